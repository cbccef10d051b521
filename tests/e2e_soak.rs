//! The `soak` scenario through real Chromium, short and time-scaled (40 cycles at 0.2): on the
//! clean stand-in every service's growth per cycle is near zero and nothing is named; with
//! `leak-per-cycle=14` F20 names Wolf's descriptors with a slope within 20 % of 14.

mod common;

use common::{marked_processes, MARK};
use helix_e2e::catalog::FailureId;
use helix_e2e::report::{Summary, Verdict};
use helix_e2e::sut::replies::Part;
use helix_e2e::verdict::detectors::leak::Resource;
use helix_e2e_shared::Service;
use std::path::Path;
use std::process::Command;

const LEAK: f64 = 14.0;

fn soak(base: &Path, fault: Option<&str>, mark: &str) -> Summary {
    let thresholds = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/detectors-matrix.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_helix-e2e"));
    cmd.args(["run", "soak", "--json", "--seed", "3", "--time-scale", "0.2", "--cycles", "40", "--thresholds"])
        .arg(&thresholds)
        .arg("--artifacts")
        .arg(base)
        .env(MARK, mark);
    if let Some(f) = fault {
        cmd.args(["--fault", f]);
    }
    let t0 = std::time::Instant::now();
    let out = cmd.output().expect("run helix-e2e");
    let summary: Summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("soak {fault:?}: {:?} in {:.0} s", summary.verdict, t0.elapsed().as_secs_f64());
    let left = marked_processes(mark);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    summary
}

#[test]
fn a_clean_soak_grows_nothing_and_a_leak_per_cycle_is_named_with_its_slope() {
    let base = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helix-e2e-soak-{}", std::process::id()));
    common::become_subreaper();
    let leftovers = common::project_leftovers();

    let clean = soak(&base, None, &format!("soak-clean-{}", std::process::id()));
    let named: Vec<String> = clean.scenarios.iter().flat_map(|s| &s.detections).map(|d| d.label()).collect();
    assert_eq!((clean.verdict, named.as_slice()), (Verdict::Pass, &[][..]), "{}", clean.artifacts);
    let growth = clean.resources.as_ref().expect("the soak reports resource growth");
    assert!(growth.cycles >= 40, "{} cycles", growth.cycles);
    for s in &growth.series {
        let t = s.trend.unwrap_or_else(|| panic!("{} {}: no fit over {} cycles", s.label, s.unit, growth.cycles));
        match s.resource {
            Resource::Fds => assert!(t.slope.abs() < 0.5, "{}: {:+.2} fds per cycle on the clean stack ({})", s.label, t.slope, clean.artifacts),
            Resource::Memory => assert!(t.slope.abs() < 1.0, "{}: {:+.2} MiB per cycle on the clean stack ({})", s.label, t.slope, clean.artifacts),
            Resource::Live => {}
        }
    }
    for service in [Service::Wolf, Service::MoonlightWeb, Service::Api] {
        assert!(growth.series.iter().any(|s| s.service == service && s.resource == Resource::Fds), "{service} was sampled");
    }

    let leak = soak(&base, Some("leak-per-cycle=14"), &format!("soak-leak-{}", std::process::id()));
    let f20 =
        leak.scenarios.iter().flat_map(|s| &s.detections).find(|d| d.fault == FailureId::F20).unwrap_or_else(|| panic!("F20 not named ({})", leak.artifacts));
    assert!(f20.message.starts_with("wolf's open file descriptors grew "), "{}", f20.message);
    let wolf =
        leak.resources.as_ref().and_then(|g| g.series.iter().find(|s| s.service == Service::Wolf && s.part == Part::Main && s.resource == Resource::Fds));
    let slope = wolf.and_then(|s| s.trend).map(|t| t.slope).expect("Wolf's descriptors were fitted");
    assert!((slope - LEAK).abs() <= 0.2 * LEAK, "Wolf grew {slope:.2} fds per cycle under leak-per-cycle=14 ({})", leak.artifacts);

    let left = common::leaks_since(&leftovers, &[&base]);
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&base);
}
