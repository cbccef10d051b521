//! What a person at a terminal sees: colour in the log on a terminal, none when `NO_COLOR` says
//! so (no-color.org). A real pseudo-terminal (util-linux `script`), because the decision turns
//! on whether stderr is one: a pipe would show nothing either way and prove nothing.

use std::process::Command;

/// What the stand-in's API service prints on a terminal in its first moments, with `no_color`
/// as the value of NO_COLOR (unset when `None`).
fn api_service_on_a_terminal(no_color: Option<&str>) -> String {
    let dir = tempfile_dir();
    let exe = env!("CARGO_BIN_EXE_helix-e2e");
    // `script` runs the command on a new pty; `timeout` ends the service, which runs until
    // stopped, once its first lines are out.
    let inner = format!("timeout -s INT 2 {exe} service api --dir {} --moonlight-credentials x --user-password throwaway --api-port 0", dir.display());
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"]).env("HELIX_E2E_LOG", "info").env_remove("NO_COLOR");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().expect("util-linux `script` runs (package bsdutils)");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("listening"), "the service said nothing on the terminal:\n{text}");
    text
}

fn tempfile_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-terminal-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An SGR sequence (`ESC [ digits/semicolons m`): colour, bold, dim.
fn has_colour(s: &str) -> bool {
    s.split('\x1b').skip(1).any(|rest| {
        let Some(params) = rest.strip_prefix('[') else { return false };
        params.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';').starts_with('m')
    })
}

#[test]
fn the_log_is_coloured_on_a_terminal_and_plain_with_no_color() {
    let coloured = api_service_on_a_terminal(None);
    assert!(has_colour(&coloured), "no colour on a terminal (so the NO_COLOR check below would prove nothing):\n{coloured:?}");
    let plain = api_service_on_a_terminal(Some("1"));
    assert!(!has_colour(&plain), "NO_COLOR=1 ignored:\n{plain:?}");
    // An empty NO_COLOR is as if unset (no-color.org).
    assert!(has_colour(&api_service_on_a_terminal(Some(""))));
}
