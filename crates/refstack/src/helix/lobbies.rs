//! Keep every stored agent's lobby alive in Wolf. Wolf keeps lobbies in memory, so a Wolf
//! restart loses all of them while Helix still stores their ids; Helix recreates a lost lobby
//! (same session, same PIN, a new lobby id) when it notices, and before any lobby join.
//!
//! With the F10 switch `no-lobby-recreate` it only logs the loss and goes on believing in the
//! old id: the ghost lobbies of the Nov 2025 restarts.

use super::api::lobby_request;
use super::store::AgentSession;
use super::{Helix, HelixError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Check every stored agent once a second; a Wolf that is down is tried again next time.
pub async fn watch(helix: Arc<Helix>) {
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        // Agents first, Wolf second: an agent stored after Wolf answered would have a lobby
        // newer than the answer, and look lost.
        let agents = helix.store.agents();
        let Ok(lobbies) = helix.wolf.lobbies().await else { continue };
        let live: HashSet<&str> = lobbies.iter().map(|l| l.id.as_str()).collect();
        for agent in agents {
            if live.contains(agent.lobby_id.as_str()) {
                continue;
            }
            if helix.cfg.faults.no_lobby_recreate {
                if reported.insert(agent.lobby_id.clone()) {
                    tracing::warn!(ses_id = %agent.id, lobby_id = %agent.lobby_id, "lobby no longer in Wolf; keeping it");
                }
                continue;
            }
            match recreate(&helix, &agent).await {
                // Stopped meanwhile: its lobby went with it.
                Ok(_) | Err(HelixError::NotFound(_)) => {}
                Err(e) => tracing::warn!(ses_id = %agent.id, "recreating lost lobby failed: {e}"),
            }
        }
    }
}

/// The agent with a lobby Wolf knows, recreated first if Wolf lost it.
pub async fn ensure(helix: &Helix, agent: AgentSession) -> Result<AgentSession, HelixError> {
    if helix.cfg.faults.no_lobby_recreate {
        return Ok(agent);
    }
    let lobbies = helix.wolf.lobbies().await.map_err(|e| HelixError::Wolf(format!("failed to list Wolf lobbies: {e}")))?;
    if lobbies.iter().any(|l| l.id == agent.lobby_id) {
        return Ok(agent);
    }
    recreate(helix, &agent).await
}

async fn recreate(helix: &Helix, agent: &AgentSession) -> Result<AgentSession, HelixError> {
    // One creator at a time: the watch and a join must not both recreate the same lobby.
    let _guard = helix.create_lock.lock().await;
    if let Some(current) = helix.store.agent(&agent.id) {
        if current.lobby_id != agent.lobby_id {
            return Ok(current);
        }
    } else {
        return Err(HelixError::NotFound(format!("session {} not found", agent.id)));
    }
    let lobby_id =
        helix.wolf.create_lobby(&lobby_request(&agent.id, agent.pin)).await.map_err(|e| HelixError::Wolf(format!("failed to recreate Wolf lobby: {e}")))?;
    tracing::info!(ses_id = %agent.id, old_lobby_id = %agent.lobby_id, lobby_id = %lobby_id, "recreated lobby lost by Wolf");
    let updated = AgentSession { lobby_id, ..agent.clone() };
    helix.store.insert_agent(updated.clone());
    Ok(updated)
}
