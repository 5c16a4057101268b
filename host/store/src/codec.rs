//! Value encoding shared by the typed trees: a value is written as its record (see
//! [`crate::records`]), MessagePack with named fields.

use crate::StoreError;
use crate::records::Stored;

pub(crate) fn encode<T: Stored>(tree: &'static str, v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(&T::Record::from(v)).map_err(|e| StoreError::Encode { tree, reason: e.to_string() })
}

pub(crate) fn decode<T: Stored>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice::<T::Record>(bytes)
        .map(Into::into)
        .map_err(|e| StoreError::Decode { tree, reason: e.to_string() })
}
