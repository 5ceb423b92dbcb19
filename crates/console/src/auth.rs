//! Who is logged in and who may try: sessions, the login rate limit, CSRF tokens, passwords and
//! API tokens. Time is passed in (milliseconds since the epoch), so all of it but the password
//! hashing is tested without clocks.

use std::collections::{BTreeMap, HashMap};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use ring::rand::{SecureRandom, SystemRandom};

use crate::settings::Role;
use forecourt_events::UnixMillis;

/// Failed logins a user name, or a client address, may make within [`FAILURE_WINDOW_MS`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Sessions kept at most; the oldest goes first (a login flood cannot grow memory).
pub const MAX_SESSIONS: usize = 1000;

/// 32 random bytes as hex: session ids and CSRF tokens.
pub fn random_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Random)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 of `token`: how API tokens are kept in the config.
pub fn token_sha256(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// Equal without telling, by its time, how much of it matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// An argon2id hash of `password` with a fresh salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AuthError::Random)?;
    let salt = argon2::password_hash::SaltString::encode_b64(&salt)
        .map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches `phc` (slow on purpose: tens of milliseconds).
pub fn password_matches(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the system's random source failed")]
    Random,
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// What every form of this session must send back.
    pub csrf: String,
    pub expires_t: UnixMillis,
}

/// The logged-in sessions, by session id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// Keeps `session` under `id`, dropping expired sessions, and the one ending first while
    /// there are too many.
    pub fn insert(&mut self, id: String, session: Session, now: UnixMillis) {
        self.by_id.retain(|_, s| s.expires_t > now);
        while self.by_id.len() >= MAX_SESSIONS {
            let Some(first) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.expires_t)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            self.by_id.remove(&first);
        }
        self.by_id.insert(id, session);
    }

    /// The session `id` names, unless it expired.
    pub fn get(&self, id: &str, now: UnixMillis) -> Option<&Session> {
        self.by_id.get(id).filter(|s| s.expires_t > now)
    }

    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }
}

/// Failed logins per user name and per client address: past [`MAX_FAILURES`] within the
/// window, further tries are refused without checking the password until the oldest failure
/// leaves the window.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: BTreeMap<String, Vec<UnixMillis>>,
}

impl LoginLimiter {
    /// Whether `keys` (the user name, the client address) may try now.
    pub fn may_try(&mut self, keys: &[&str], now: UnixMillis) -> bool {
        self.forget_before(now - FAILURE_WINDOW_MS);
        keys.iter().all(|k| {
            self.failures
                .get(*k)
                .is_none_or(|times| times.len() < MAX_FAILURES)
        })
    }

    pub fn failed(&mut self, keys: &[&str], now: UnixMillis) {
        for k in keys {
            self.failures.entry((*k).to_string()).or_default().push(now);
        }
    }

    /// A right password clears the user name's failures (not the address's).
    pub fn succeeded(&mut self, user: &str) {
        self.failures.remove(user);
    }

    fn forget_before(&mut self, oldest_kept: UnixMillis) {
        self.failures.retain(|_, times| {
            times.retain(|t| *t > oldest_kept);
            !times.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(expires_t: UnixMillis) -> Session {
        Session {
            user: "anna".into(),
            role: Role::Staff,
            csrf: "c".into(),
            expires_t,
        }
    }

    #[test]
    fn a_session_ends_at_its_expiry() {
        let mut sessions = Sessions::default();
        sessions.insert("s1".into(), session(1000), 0);
        assert!(sessions.get("s1", 999).is_some());
        assert!(sessions.get("s1", 1000).is_none());
        assert!(sessions.get("other", 0).is_none());
        sessions.remove("s1");
        assert!(sessions.get("s1", 0).is_none());
    }

    #[test]
    fn sessions_never_grow_past_the_cap() {
        let mut sessions = Sessions::default();
        for i in 0..MAX_SESSIONS + 10 {
            sessions.insert(format!("s{i}"), session(10_000 + i as i64), 0);
        }
        assert_eq!(sessions.by_id.len(), MAX_SESSIONS);
        // The ones ending first went.
        assert!(sessions.get("s0", 0).is_none());
        assert!(sessions.get(&format!("s{}", MAX_SESSIONS + 9), 0).is_some());
    }

    #[test]
    fn five_failures_lock_a_name_until_the_first_leaves_the_window() {
        let mut limiter = LoginLimiter::default();
        for i in 0..MAX_FAILURES as i64 {
            assert!(limiter.may_try(&["anna", "10.0.0.5"], i));
            limiter.failed(&["anna", "10.0.0.5"], i);
        }
        assert!(!limiter.may_try(&["anna", "10.0.0.9"], 100));
        // Another name from the same address: the address is locked too.
        assert!(!limiter.may_try(&["bert", "10.0.0.5"], 100));
        assert!(limiter.may_try(&["bert", "10.0.0.9"], 100));
        assert!(limiter.may_try(&["anna", "10.0.0.9"], FAILURE_WINDOW_MS));
    }

    #[test]
    fn a_right_password_clears_the_names_failures() {
        let mut limiter = LoginLimiter::default();
        limiter.failed(&["anna", "ip"], 0);
        limiter.succeeded("anna");
        assert!(!limiter.failures.contains_key("anna"));
        assert!(limiter.failures.contains_key("ip"));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(password_matches("correct horse", &phc));
        assert!(!password_matches("correct hors", &phc));
        assert!(!password_matches("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_compared_and_hashed() {
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
