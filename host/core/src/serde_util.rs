//! Serde helpers for the engine's types that cross between the nodes of a pool.

/// `Arc<T>` as `T` (serde's `rc` feature, for one field, without turning it on everywhere).
pub mod arc {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the value behind the `Arc`.
    pub fn serialize<T: Serialize, S: Serializer>(value: &Arc<T>, s: S) -> Result<S::Ok, S::Error> {
        T::serialize(value, s)
    }

    /// Deserializes a value into a new `Arc`.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Arc<T>, D::Error> {
        T::deserialize(d).map(Arc::new)
    }
}

/// A patch field (`Option<Option<T>>`: leave, clear, set) as an explicit enum, since formats
/// that write `None` and `Some(None)` alike (JSON, MessagePack) would lose the difference.
pub mod patch {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    #[serde(rename = "Patch")]
    enum PatchRef<'a, T> {
        Keep,
        Clear,
        Set(&'a T),
    }

    #[derive(Deserialize)]
    enum Patch<T> {
        Keep,
        Clear,
        Set(T),
    }

    /// Serializes `None` as `Keep`, `Some(None)` as `Clear`, `Some(Some(v))` as `Set(v)`.
    pub fn serialize<T: Serialize, S: Serializer>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            None => PatchRef::<T>::Keep,
            Some(None) => PatchRef::Clear,
            Some(Some(v)) => PatchRef::Set(v),
        }
        .serialize(s)
    }

    /// The inverse of [`serialize`].
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Ok(match Patch::<T>::deserialize(d)? {
            Patch::Keep => None,
            Patch::Clear => Some(None),
            Patch::Set(v) => Some(Some(v)),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::presence::engine::DocPatch;

    #[test]
    fn a_patch_keeps_leave_clear_and_set_apart() {
        let patch = DocPatch { note: Some(None), location: Some(Some("Paris".into())), ..DocPatch::default() };
        let json = serde_json::to_string(&patch).expect("encode");
        let back: DocPatch = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, patch);
        assert_eq!(back.manual, None);
    }
}
