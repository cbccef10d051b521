//! Service control of the embedded stack: a restart is a real kill and respawn. Each service
//! comes back on its port, forgetting what it kept in memory (Wolf its lobbies, moonlight-web
//! its sessions) and keeping what it stores (the API its sessions, Wolf its pairings); the API
//! then recreates the lobby Wolf lost.

use helix_e2e::sut::control::processes::ProcessStack;
use helix_e2e::sut::control::{Service, ServiceControl};
use helix_e2e::sut::helix::HelixClient;
use helix_e2e::sut::wolf::WolfClient;
use std::time::{Duration, Instant};

fn pid_of(dir: &std::path::Path, service: &str) -> Vec<u32> {
    // The service processes are children of this test; find them by their command line.
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&format!(" service {service} "))
            && cmd.contains(&dir.display().to_string())
            && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
        {
            out.push(pid);
        }
    }
    out
}

#[tokio::test]
async fn restarts_lose_memory_keep_stores_and_the_api_recreates_lost_lobbies() {
    let dir = std::env::temp_dir().join(format!("helix-e2e-control-{}", uuid::Uuid::new_v4()));
    let stack = ProcessStack::start(env!("CARGO_BIN_EXE_helix-e2e").as_ref(), &dir, Vec::new()).await.unwrap();
    let e = stack.endpoints();
    let mut helix = HelixClient::new(&e.helix_url);
    helix.login(&e.user_email, &e.user_password).await.unwrap();
    let wolf = WolfClient::new(&e.wolf_socket);
    let ses = helix.create_agent_session("restart test").await.unwrap();
    let lobby = helix.session_lobby(&ses).await.unwrap().unwrap();
    assert!(wolf.lobbies().await.unwrap().iter().any(|l| l.id == lobby));

    // The API: a new process, the same session and the same login (stored), on the same port.
    let api_before = pid_of(&dir, "api");
    stack.restart(Service::Api).await.unwrap();
    assert_ne!(pid_of(&dir, "api"), api_before);
    assert_eq!(helix.session_lobby(&ses).await.unwrap().as_deref(), Some(lobby.as_str()), "the token and the session survive an API restart");

    // Wolf: its lobbies are gone with the process; the API notices and recreates the lobby.
    let wolf_before = pid_of(&dir, "wolf");
    stack.restart(Service::Wolf).await.unwrap();
    assert_ne!(pid_of(&dir, "wolf"), wolf_before);
    let deadline = Instant::now() + Duration::from_secs(10);
    let recreated = loop {
        let now = helix.session_lobby(&ses).await.unwrap().unwrap();
        if now != lobby && wolf.lobbies().await.unwrap().iter().any(|l| l.id == now) {
            break now;
        }
        assert!(Instant::now() < deadline, "the API did not recreate the lobby Wolf lost");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(wolf.lobbies().await.unwrap().len(), 1, "one lobby, the recreated {recreated}");

    // Stop and start: down in between, back on the same socket after.
    stack.stop(Service::Wolf).await.unwrap();
    assert!(wolf.lobbies().await.is_err(), "Wolf answers after stop");
    stack.start(Service::Wolf).await.unwrap();
    wolf.lobbies().await.unwrap();

    // Kill leaves nothing of the service's process group.
    stack.kill(Service::MoonlightWeb).await.unwrap();
    assert!(pid_of(&dir, "moonlight-web").is_empty());
    stack.start(Service::MoonlightWeb).await.unwrap();
    assert_eq!(pid_of(&dir, "moonlight-web").len(), 1);

    helix.stop_agent_session(&ses).await.unwrap();
    stack.shutdown().await;
    for s in ["wolf", "moonlight-web", "api"] {
        assert!(pid_of(&dir, s).is_empty(), "{s} still running after shutdown");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
