//! `[console]` in the agent's config: where the console listens, who may log in, which API
//! tokens the POS may use. Passwords and tokens are never stored: users carry an argon2 hash
//! (`forecourt-agent hash-password`), tokens their SHA-256.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Loopback only unless the installer opens it up.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// `address:port` to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A login ends this long after it was made.
    #[serde(default = "default_session_hours")]
    pub session_hours: f64,
    #[serde(default, rename = "user")]
    pub users: Vec<UserSettings>,
    #[serde(default, rename = "api_token")]
    pub api_tokens: Vec<ApiTokenSettings>,
    /// HTTPS: the certificate chain (PEM, the server's own first) and its private key (PEM);
    /// both or neither. Without them the console speaks plain HTTP.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The station's offset from UTC in hours, where the analytics page's days and hours
    /// begin. Default 8 (China Standard Time).
    #[serde(default = "default_utc_offset_hours")]
    pub utc_offset_hours: f64,
    /// The plate crops behind the sales' verdicts (`<data_dir>/crops`) take at most this many
    /// megabytes; the oldest go first. Default 200.
    #[serde(default = "default_crops_max_mb")]
    pub crops_max_mb: u64,
    /// Crops older than this many days are deleted. Default 30.
    #[serde(default = "default_crops_max_days")]
    pub crops_max_days: u32,
}

fn default_crops_max_mb() -> u64 {
    200
}

fn default_crops_max_days() -> u32 {
    30
}

fn default_utc_offset_hours() -> f64 {
    8.0
}

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}

fn default_session_hours() -> f64 {
    12.0
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub name: String,
    pub role: Role,
    /// PHC string of an argon2 hash (`$argon2id$v=19$...`).
    pub password_hash: String,
}

/// What a user may do. An installer may do everything staff may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees the forecourt, the sales and the health page.
    Staff,
    /// Also the installer's pages.
    Installer,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenSettings {
    /// Who uses it (for the log): `pos`, `earpiece`.
    pub name: String,
    /// Lower-case hex SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
}

/// One thing wrong with `[console]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("listen: {0:?} is not an address:port")]
    Listen(String),
    #[error("session_hours must be more than 0 and at most 720, not {0}")]
    SessionHours(String),
    #[error("user {name:?}: the name must be 1 to 64 letters, digits, '.', '-' or '_'")]
    UserName { index: usize, name: String },
    #[error("user {name:?} is listed twice")]
    DuplicateUser { index: usize, name: String },
    #[error("user {name:?}: password_hash is not an argon2 hash ({why}); make one with `forecourt-agent hash-password`")]
    PasswordHash {
        index: usize,
        name: String,
        why: String,
    },
    #[error("api_token {name:?}: sha256 must be 64 lower-case hex digits")]
    TokenHash { index: usize, name: String },
    #[error("tls_cert and tls_key go together: give both for HTTPS, or neither")]
    TlsPair,
    #[error("utc_offset_hours must be a multiple of 0.25 from -12 to 14, not {0}")]
    UtcOffset(String),
    #[error("crops_max_mb must be from 1 to 1000000, not {0}")]
    CropsMaxMb(u64),
    #[error("crops_max_days must be from 1 to 3650, not {0}")]
    CropsMaxDays(u32),
}

impl SettingsError {
    /// The key the problem is at, from `[console]` down: `["user", "2", "password_hash"]`.
    pub fn path(&self) -> Vec<String> {
        let at = |list: &str, index: &usize, key: &str| {
            vec![list.to_string(), index.to_string(), key.to_string()]
        };
        match self {
            SettingsError::Listen(_) => vec!["listen".into()],
            SettingsError::SessionHours(_) => vec!["session_hours".into()],
            SettingsError::UserName { index, .. } | SettingsError::DuplicateUser { index, .. } => {
                at("user", index, "name")
            }
            SettingsError::PasswordHash { index, .. } => at("user", index, "password_hash"),
            SettingsError::TokenHash { index, .. } => at("api_token", index, "sha256"),
            SettingsError::TlsPair => vec!["tls_cert".into()],
            SettingsError::UtcOffset(_) => vec!["utc_offset_hours".into()],
            SettingsError::CropsMaxMb(_) => vec!["crops_max_mb".into()],
            SettingsError::CropsMaxDays(_) => vec!["crops_max_days".into()],
        }
    }
}

impl ConsoleSettings {
    pub fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.listen
            .parse()
            .map_err(|_| SettingsError::Listen(self.listen.clone()))
    }

    /// How much of the plate crops behind the sales' verdicts is kept.
    pub fn crop_limits(&self) -> station::evidence::EvidenceLimits {
        station::evidence::EvidenceLimits {
            max_bytes: self.crops_max_mb.saturating_mul(1 << 20),
            max_age_ms: i64::from(self.crops_max_days) * 86_400_000,
        }
    }

    /// The certificate chain and key files, when the console serves HTTPS.
    pub fn tls_files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// Every problem, in the order of the file (the TLS files themselves are read by
    /// `tls::server_config`, at `check-config` and at start).
    pub fn problems(&self) -> Vec<SettingsError> {
        let mut problems = Vec::new();
        if let Err(e) = self.listen_addr() {
            problems.push(e);
        }
        if !(self.session_hours > 0.0 && self.session_hours <= 720.0) {
            problems.push(SettingsError::SessionHours(self.session_hours.to_string()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (index, user) in self.users.iter().enumerate() {
            let name = user.name.clone();
            if !is_user_name(&user.name) {
                problems.push(SettingsError::UserName { index, name });
            } else if !seen.insert(user.name.as_str()) {
                problems.push(SettingsError::DuplicateUser { index, name });
            }
            let why = match argon2::PasswordHash::new(&user.password_hash) {
                Err(e) => Some(e.to_string()),
                Ok(_) if !user.password_hash.starts_with("$argon2") => {
                    Some("another algorithm".into())
                }
                Ok(_) => None,
            };
            if let Some(why) = why {
                problems.push(SettingsError::PasswordHash {
                    index,
                    name: user.name.clone(),
                    why,
                });
            }
        }
        for (index, token) in self.api_tokens.iter().enumerate() {
            let hex = token.sha256.as_bytes();
            if hex.len() != 64 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                problems.push(SettingsError::TokenHash {
                    index,
                    name: token.name.clone(),
                });
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            problems.push(SettingsError::TlsPair);
        }
        let quarters = self.utc_offset_hours * 4.0;
        if !((-12.0..=14.0).contains(&self.utc_offset_hours) && quarters == quarters.round()) {
            problems.push(SettingsError::UtcOffset(self.utc_offset_hours.to_string()));
        }
        if !(1..=1_000_000).contains(&self.crops_max_mb) {
            problems.push(SettingsError::CropsMaxMb(self.crops_max_mb));
        }
        if !(1..=3650).contains(&self.crops_max_days) {
            problems.push(SettingsError::CropsMaxDays(self.crops_max_days));
        }
        problems
    }
}

/// What a user name may be: short, and nothing that needs escaping anywhere.
pub fn is_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Q1Zq8u8y3Yl3c3C8aD0b8m6f3bXxqJ2rU3XnB7tQ4bE";

    /// The same shape as the TOML section (this crate parses no TOML itself).
    fn settings(json: &str) -> ConsoleSettings {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_listen_on_loopback_only() {
        let s = settings("{}");
        assert_eq!(s.listen_addr().unwrap().to_string(), "127.0.0.1:8080");
        assert!(s.listen_addr().unwrap().ip().is_loopback());
        assert!(s.problems().is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let s = settings(&format!(
            r#"{{"listen": "0.0.0.0", "session_hours": 0,
                "user": [{{"name": "anna", "role": "staff", "password_hash": "{HASH}"}},
                         {{"name": "anna", "role": "installer", "password_hash": "{HASH}"}},
                         {{"name": "bad name", "role": "staff", "password_hash": "secret"}}],
                "api_token": [{{"name": "pos", "sha256": "ABC"}}]}}"#
        ));
        let problems = s.problems();
        assert_eq!(
            problems[..3],
            [
                SettingsError::Listen("0.0.0.0".into()),
                SettingsError::SessionHours("0".into()),
                SettingsError::DuplicateUser {
                    index: 1,
                    name: "anna".into()
                },
            ]
        );
        assert!(matches!(
            &problems[3],
            SettingsError::UserName { index: 2, .. }
        ));
        assert!(matches!(
            &problems[4],
            SettingsError::PasswordHash { index: 2, .. }
        ));
        assert_eq!(
            problems[5],
            SettingsError::TokenHash {
                index: 0,
                name: "pos".into()
            }
        );
        assert_eq!(problems.len(), 6);
    }

    #[test]
    fn unknown_keys_and_roles_are_refused() {
        assert!(serde_json::from_str::<ConsoleSettings>(r#"{"listne": "x"}"#).is_err());
        assert!(serde_json::from_str::<UserSettings>(
            r#"{"name": "a", "role": "admin", "password_hash": "x"}"#
        )
        .is_err());
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let s = settings(r#"{"tls_cert": "/etc/forecourt/console.pem"}"#);
        assert_eq!(s.problems(), [SettingsError::TlsPair]);
        assert_eq!(SettingsError::TlsPair.path(), ["tls_cert"]);
        assert!(s.tls_files().is_none());
        let s = settings(r#"{"tls_cert": "/c.pem", "tls_key": "/k.pem"}"#);
        assert!(s.problems().is_empty());
        assert!(s.tls_files().is_some());
    }

    #[test]
    fn the_utc_offset_is_a_real_one() {
        assert_eq!(settings("{}").utc_offset_hours, 8.0);
        assert!(settings(r#"{"utc_offset_hours": 5.75}"#)
            .problems()
            .is_empty());
        for bad in ["15", "-13", "5.1"] {
            let s = settings(&format!(r#"{{"utc_offset_hours": {bad}}}"#));
            assert_eq!(s.problems(), [SettingsError::UtcOffset(bad.into())]);
        }
    }

    #[test]
    fn crop_limits_have_defaults_and_bounds() {
        let limits = settings("{}").crop_limits();
        assert_eq!(limits.max_bytes, 200 << 20);
        assert_eq!(limits.max_age_ms, 30 * 86_400_000);
        let s = settings(r#"{"crops_max_mb": 0, "crops_max_days": 4000}"#);
        assert_eq!(
            s.problems(),
            [
                SettingsError::CropsMaxMb(0),
                SettingsError::CropsMaxDays(4000)
            ]
        );
        assert_eq!(SettingsError::CropsMaxDays(0).path(), ["crops_max_days"]);
    }

    #[test]
    fn installer_outranks_staff() {
        assert!(Role::Installer > Role::Staff);
    }
}
