//! How the station re-reads its configuration (HQ's `reload_config`, the operator's SIGHUP)
//! without knowing the config file's format: the agent hands it a [`ConfigSource`].

/// Why a file could not be reloaded (the config loader's own error, with its causes).
pub type ReloadError = Box<dyn std::error::Error + Send + Sync>;

/// What a reload found.
#[derive(Debug, Clone, PartialEq)]
pub struct Reload {
    /// Sections changed and applied now.
    pub applied: Vec<String>,
    /// Sections changed that take effect only after a restart.
    pub needs_restart: Vec<String>,
    /// The matcher settings to use from now on, when the `matcher` section changed.
    pub matcher: Option<matcher::MatcherConfig>,
    /// The fuelling points' zones from now on, when they changed.
    pub layout: Option<matcher::Layout>,
}

/// The configuration file as loaded.
pub trait ConfigSource: Send {
    /// Reads the file again and compares it with what is running. An invalid file changes
    /// nothing and says why.
    fn reload(&mut self) -> Result<Reload, ReloadError>;
}
