//! Wolf's per-session video and control stream (being written).
pub async fn serve(_listener: tokio::net::TcpListener, _state: std::sync::Arc<super::state::WolfState>) {}
