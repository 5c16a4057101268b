//! Password hashing with argon2id (the crate's defaults: m = 19 MiB, t = 2, p = 1), run on the
//! blocking pool so a login never stalls the async workers.
//!
//! Hashing is bounded: at most one hash per core runs at a time, a bounded number wait for
//! their turn, and any more are refused at once ([`ServiceError::Busy`], with a time to retry after). The
//! 19 MiB of working memory of each running hash is kept in a pool and reused, so a burst of
//! logins costs at most `cores × 19 MiB`, allocated once, instead of one fresh allocation per
//! attempt that the allocator may keep for good.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ServiceError;

/// Logins waiting for a free core per core, beyond which a login is refused as busy.
const WAITING_PER_CORE: usize = 64;

/// Hashes `password` into a PHC string.
pub async fn hash(password: String) -> Result<String, ServiceError> {
    run(move |memory| hash_with(&password, memory)).await?.map_err(|e| ServiceError::Internal(format!("argon2: {e}")))
}

/// Whether `password` matches `phc`. With no stored hash (unknown user) a decoy hash is checked,
/// so a failed login takes the same time either way. A malformed stored hash is no match
/// (logged). Fails only when the server is too busy to check ([`ServiceError::Busy`]).
pub async fn verify(password: String, phc: Option<String>) -> Result<bool, ServiceError> {
    run(move |memory| {
        let phc = match phc {
            Some(p) => p,
            None => decoy_hash(memory).to_owned(),
        };
        verify_with(&password, &phc, memory).unwrap_or_else(|e| {
            tracing::error!(error = %e, "stored password hash is malformed");
            false
        })
    })
    .await
}

/// The bound on concurrent hashes and the pool of their working memory.
struct Gate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    memory: Mutex<Vec<Vec<Block>>>,
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Gate {
            permits: Arc::new(Semaphore::new(cores)),
            waiting: AtomicUsize::new(0),
            max_waiting: cores * WAITING_PER_CORE,
            memory: Mutex::new(Vec::new()),
        }
    })
}

/// Counts a waiting caller for as long as it waits.
struct Waiting(&'static AtomicUsize);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    async fn enter(&'static self) -> Result<OwnedSemaphorePermit, ServiceError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ServiceError::Busy { retry_after: std::time::Duration::from_secs(1) });
        }
        let _waiting = Waiting(&self.waiting);
        self.permits.clone().acquire_owned().await.map_err(|e| ServiceError::Internal(format!("hash gate: {e}")))
    }

    fn take_memory(&self) -> Vec<Block> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default()
    }

    fn put_memory(&self, memory: Vec<Block>) {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
    }
}

/// Runs `f` on the blocking pool once a core is free, with pooled argon2 memory. The permit
/// goes with the task, so a caller that gives up does not free the core before the hash ends.
async fn run<T: Send + 'static>(f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> Result<T, ServiceError> {
    let gate = gate();
    let permit = gate.enter().await?;
    tokio::task::spawn_blocking(move || {
        let mut memory = gate.take_memory();
        let out = f(&mut memory);
        gate.put_memory(memory);
        drop(permit);
        out
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("hash task: {e}")))
}

fn argon2_for(params: Params, memory: &mut Vec<Block>) -> Argon2<'static> {
    memory.resize(params.block_count(), Block::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_with(password: &str, memory: &mut Vec<Block>) -> argon2::password_hash::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    let params = Params::default();
    let argon2 = argon2_for(params.clone(), memory);
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        Ok(argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut memory[..])?)
    })?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &str, phc: &str, memory: &mut Vec<Block>) -> argon2::password_hash::Result<bool> {
    use argon2::password_hash::Error;
    let parsed = PasswordHash::new(phc)?;
    let algorithm = Algorithm::try_from(parsed.algorithm)?;
    let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
    let params = Params::try_from(&parsed)?;
    let expected = parsed.hash.ok_or(Error::PhcStringField)?;
    let salt = parsed.salt.ok_or(Error::SaltInvalid(argon2::password_hash::errors::InvalidValue::Malformed))?;
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf)?;
    memory.resize(params.block_count(), Block::default());
    let argon2 = Argon2::new(algorithm, version, params);
    let actual = Output::init_with(expected.len(), |out| {
        Ok(argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut memory[..])?)
    })?;
    // Output's equality is constant-time.
    Ok(actual == expected)
}

fn decoy_hash(memory: &mut Vec<Block>) -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_with(&crate::token::random_password(), memory).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_then_verify() {
        let h = super::hash("correct horse".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(super::verify("correct horse".into(), Some(h.clone())).await.expect("verify"));
        assert!(!super::verify("wrong horse".into(), Some(h)).await.expect("verify"));
        assert!(!super::verify("anything".into(), None).await.expect("verify"));
        assert!(!super::verify("anything".into(), Some("not a hash".into())).await.expect("verify"));
    }

    #[tokio::test]
    async fn hashes_of_the_argon2_crate_still_verify() {
        use argon2::PasswordHasher;
        let salt = argon2::password_hash::SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let phc = argon2::Argon2::default().hash_password(b"old password", &salt).expect("hash").to_string();
        assert!(super::verify("old password".into(), Some(phc.clone())).await.expect("verify"));
        assert!(!super::verify("new password".into(), Some(phc)).await.expect("verify"));
    }
}
