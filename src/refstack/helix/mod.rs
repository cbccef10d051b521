//! The stand-in Helix API and viewer pages (being written).
use std::path::PathBuf;
pub struct HelixConfig { pub wolf_socket: PathBuf, pub moonlight_web: String, pub moonlight_credentials: Option<String>, pub user_email: String, pub user_password: String, pub runner_token: String }
pub async fn serve(_listener: tokio::net::TcpListener, _cfg: HelixConfig) -> std::io::Result<()> { Ok(()) }
