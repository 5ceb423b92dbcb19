//! The station console, served by the agent itself: a local web page for staff (the forecourt
//! live, the health of cameras, pumps and the link to HQ) and a live local API for POS
//! integrators (`/api/fps`, `/api/events`). It shows what the station decides as it decides it
//! (`station::live`), so nothing on it waits for the uplink. See `docs/console.md`.
//!
//! - [`settings`]: `[console]` in the config (address, users, API tokens);
//! - [`audit`]: who logged in and corrected what, one JSON line each;
//! - [`auth`]: sessions, the login rate limit, CSRF, passwords (argon2), API tokens;
//! - [`charts`]: the analytics page's figures as SVG, pure: hourly summaries in, HTML out;
//! - [`forecourt`]: the tiles, pure: records in, tiles and API events out;
//! - [`pages`]: the HTML and the embedded assets;
//! - [`server`]: routes and streams;
//! - [`tls`]: HTTPS with rustls, when the config gives a certificate and key;
//! - [`zone_file`]: how the installer's page reads and writes the zones in the config file.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod audit;
pub mod auth;
pub mod charts;
pub mod forecourt;
pub mod pages;
pub mod server;
pub mod settings;
pub mod tls;
pub mod zone_file;

pub use server::{Console, ConsoleError, ConsoleFeeds};
pub use settings::{ConsoleSettings, Role};
