//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `run [ARGS]`: build the first-party plugins and Halo (release), then `halo serve ARGS`.
//! - `test`: everything CI checks: formatting, clippy, plugin builds, every test (installing
//!   Debian's `chromium` and `chromium-driver` for the web client's end-to-end test, `prosody`
//!   for the bench's side-by-side XMPP test and the xmpp adapter's test, and slixmpp from PyPI
//!   for the latter, if missing).
//! - `plugins`: build every plugin under `plugins/` for `wasm32-wasip2` (adding the target if
//!   missing), the Python example with componentize-py when it is installed (required in CI),
//!   and the JavaScript example with componentize-js (npm, pinned by its package-lock.json)
//!   when Node.js 18+ is installed (required in CI).
//!
//! Each task builds `halo` once (the Python and JavaScript examples are packed with that same binary) and says
//! which step it is on (`xtask [2/4] …`) before each one; cargo's own progress stays visible.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

const WASM_TARGET: &str = "wasm32-wasip2";
/// First-party plugins `run` installs (disabled until configured).
const FIRST_PARTY: [&str; 2] = ["custom_states", "office_hours"];
// `jsonl_archive` is built too; it needs a directory grant, so it is installed by the admin
// (README: Compliance archiving).

/// Numbered progress lines, one per step, with the time the previous step took.
struct Steps {
    done: usize,
    total: usize,
    started: Instant,
    step_started: Instant,
}

impl Steps {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Self { done: 0, total, started: now, step_started: now }
    }

    /// Announces the next step.
    fn next(&mut self, what: &str) {
        let now = Instant::now();
        if self.done > 0 {
            eprintln!("xtask: step {} took {}", self.done, elapsed(now - self.step_started));
        }
        self.done += 1;
        self.step_started = now;
        eprintln!("xtask [{}/{}] {what}", self.done, self.total);
    }

    /// Says how long the whole task took.
    fn finish(&self) {
        eprintln!("xtask: step {} took {}", self.done, elapsed(self.step_started.elapsed()));
        eprintln!("xtask: done in {}", elapsed(self.started.elapsed()));
    }
}

fn elapsed(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{:02}s", s / 60, s % 60) } else { format!("{:.1}s", d.as_secs_f64()) }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = root()?;
    match task.as_str() {
        "run" => {
            let mut steps = Steps::new(4);
            steps.next("building the plugins (wasm32-wasip2, release)");
            plugins(&root)?;
            steps.next("building halo (release; the first build takes several minutes)");
            cargo(&root, &["build", "--release", "-p", "halo"])?;
            let bin = target_dir(&root).join("release/halo");
            steps.next("building the Python and JavaScript plugin examples");
            python_example(&root, &bin)?;
            js_example(&root, &bin)?;
            let mut serve = vec!["serve".to_owned()];
            for p in FIRST_PARTY {
                serve.push("--preinstall".into());
                serve.push(root.join(format!("plugins/target/{WASM_TARGET}/release/{p}.wasm")).display().to_string());
            }
            serve.extend(rest);
            steps.next("starting halo serve");
            steps.finish();
            run(Command::new(bin).args(&serve).current_dir(&root))
        }
        "test" => {
            let mut steps = Steps::new(9);
            steps.next("checking rustfmt and clippy are installed");
            run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))?;
            steps.next("cargo fmt --check");
            cargo(&root, &["fmt", "--all", "--", "--check"])?;
            steps.next("clippy (whole workspace, all targets)");
            cargo(&root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            // Everything the tests run, halo's debug binary included, built once: the Python
            // example is packed with that binary, and the test run below finds it all built.
            steps.next("building the tests and halo (debug)");
            cargo(&root, &["test", "--workspace", "--no-run"])?;
            steps.next("building the plugins (wasm32-wasip2, release) and the Python and JavaScript examples");
            plugins(&root)?;
            python_example(&root, &target_dir(&root).join("debug/halo"))?;
            js_example(&root, &target_dir(&root).join("debug/halo"))?;
            steps.next("plugin unit tests (native, against the SDK's test host)");
            cargo(&root.join("plugins"), &["test", "--quiet"])?;
            cargo(root.join("examples/http-archive-sink").as_path(), &["test", "--quiet"])?;
            steps.next("Python and JavaScript plugin unit tests (sdk/python's test host; jco in Node.js)");
            python_tests(&root)?;
            js_tests(&root)?;
            steps.next("checking the test tools (chromium, prosody, slixmpp)");
            browser()?;
            prosody()?;
            slixmpp()?;
            steps.next("cargo test --workspace (unit, integration and browser tests)");
            let mut test = vec!["test", "--workspace"];
            test.extend(rest.iter().map(String::as_str));
            cargo(&root, &test)?;
            steps.finish();
            Ok(())
        }
        "plugins" => {
            let mut steps = Steps::new(3);
            steps.next("building the plugins (wasm32-wasip2, release)");
            plugins(&root)?;
            steps.next("building halo (debug) to pack the Python and JavaScript examples");
            cargo(&root, &["build", "-p", "halo"])?;
            steps.next("building the Python and JavaScript plugin examples");
            python_example(&root, &target_dir(&root).join("debug/halo"))?;
            js_example(&root, &target_dir(&root).join("debug/halo"))?;
            steps.finish();
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask <run [serve args] | test [cargo test args] | plugins>");
            std::process::exit(2);
        }
    }
}

/// Where cargo puts the host's build: `CARGO_TARGET_DIR` (or `CARGO_BUILD_TARGET_DIR`), else
/// `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_BUILD_TARGET_DIR"))
        .map(PathBuf::from)
        .map(|d| std::path::absolute(&d).unwrap_or(d))
        .unwrap_or_else(|| root.join("target"))
}

fn root() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(dir.parent().context("xtask lives in the workspace root")?.to_owned())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn cargo(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args).current_dir(dir))
}

/// Builds the plugin workspace under `plugins/` when it has members.
fn plugins(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("plugins");
    if !dir.join("Cargo.toml").exists() {
        eprintln!("xtask: no plugin workspace in plugins/ yet; nothing to build");
        return Ok(());
    }
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let has_target =
        installed.map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == WASM_TARGET)).unwrap_or(false);
    if !has_target {
        run(Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    // One package per build: a workspace build would unify the SDK's features, putting both
    // worlds (presence-states, archive-sink) into every component. Always into plugins/target,
    // where `run` and the tests look, whatever CARGO_TARGET_DIR says.
    let target_dir = dir.join("target").display().to_string();
    for member in workspace_members(&dir)? {
        cargo(&dir, &["build", "--release", "--target", WASM_TARGET, "--target-dir", &target_dir, "-p", &member])?;
    }
    // The example sink in examples/, its own workspace, into the same target directory.
    let example = root.join("examples/http-archive-sink/Cargo.toml").display().to_string();
    cargo(
        &dir,
        &["build", "--release", "--target", WASM_TARGET, "--target-dir", &target_dir, "--manifest-path", &example],
    )
}

/// The `members = [...]` of a workspace's Cargo.toml.
fn workspace_members(dir: &Path) -> anyhow::Result<Vec<String>> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let list = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inside, _)| inside)
        .context("no members list in plugins/Cargo.toml")?;
    Ok(list.split(',').map(|m| m.trim().trim_matches('"').to_owned()).filter(|m| !m.is_empty()).collect())
}

/// Builds `examples/python-presence` with componentize-py and packs its manifest in with the
/// `halo` binary `halo` (built by the task already: no second build just for this).
fn python_example(root: &Path, halo: &Path) -> anyhow::Result<()> {
    let dir = root.join("examples/python-presence");
    let installed = || Command::new("componentize-py").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed() {
        eprintln!("xtask: installing componentize-py 0.25.1 from PyPI for the Python example");
        let _ = run(Command::new("python3").args(["-m", "pip", "install", "--quiet", "componentize-py==0.25.1"]));
    }
    if !installed() {
        if std::env::var_os("CI").is_some() {
            bail!("componentize-py is not installed (.ci/run installs it: pip install componentize-py==0.25.1)");
        }
        eprintln!(
            "xtask: componentize-py not installed; skipping the Python example (pip install componentize-py==0.25.1)"
        );
        return Ok(());
    }
    std::fs::create_dir_all(dir.join("target"))?;
    let wit = root.join("wit/v0.1.0");
    run(Command::new("componentize-py")
        .args(["-d"])
        .arg(&wit)
        .args(["-w", "presence-states", "componentize", "app", "-o", "target/python-lunch.raw.wasm"])
        .current_dir(&dir))?;
    run(Command::new(halo)
        .args([
            "plugin",
            "pack",
            "examples/python-presence/target/python-lunch.raw.wasm",
            "--manifest",
            "examples/python-presence/manifest.json",
            "-o",
            "examples/python-presence/target/python-lunch.wasm",
        ])
        .current_dir(root))
}

/// Runs the Python test host's own tests and the Python example's unit tests with `unittest`
/// (no dependencies: `sdk/python` is pure Python).
fn python_tests(root: &Path) -> anyhow::Result<()> {
    let sdk = root.join("sdk/python");
    run(Command::new("python3").args(["-m", "unittest", "discover", "-s", "tests"]).current_dir(&sdk))?;
    run(Command::new("python3")
        .args(["-m", "unittest", "test_app"])
        .env("PYTHONPATH", &sdk)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(root.join("examples/python-presence")))
}

/// Runs the JavaScript example's unit tests (`npm test`: jco turns the built component into a
/// Node.js module whose Halo imports a fake host answers). Skipped where `js_example` was.
fn js_tests(root: &Path) -> anyhow::Result<()> {
    let dir = root.join("examples/js-presence");
    if !dir.join("target/js-quiet-hours.raw.wasm").exists() || !dir.join("node_modules").exists() {
        eprintln!("xtask: the JavaScript example was not built; skipping its tests");
        return Ok(());
    }
    run(Command::new("npm").args(["test", "--silent"]).current_dir(&dir))
}

/// The oldest Node.js componentize-js supports.
const NODE_MAJOR: u32 = 18;

/// Builds `examples/js-presence` with componentize-js (installed by `npm ci` from its
/// package-lock.json) and packs its manifest in with `halo`. Skipped, unless in CI, without
/// Node.js 18+; rebuilt only when its sources changed (componentize-js takes ~20 s of CPU).
fn js_example(root: &Path, halo: &Path) -> anyhow::Result<()> {
    let dir = root.join("examples/js-presence");
    let node = Command::new("node").arg("--version").output().ok().filter(|o| o.status.success());
    let major = node.and_then(|o| {
        String::from_utf8_lossy(&o.stdout).trim().trim_start_matches('v').split('.').next()?.parse::<u32>().ok()
    });
    if major.is_none_or(|m| m < NODE_MAJOR) {
        let why = format!("Node.js {NODE_MAJOR}+ with npm is needed for the JavaScript example (found {major:?})");
        if std::env::var_os("CI").is_some() {
            bail!("{why}; .ci/run installs Debian's nodejs and npm");
        }
        eprintln!("xtask: {why}; skipping it");
        return Ok(());
    }
    // componentize-js only when its inputs changed; packing (cheap) every time.
    let raw = dir.join("target/js-quiet-hours.raw.wasm");
    let built = std::fs::metadata(&raw).and_then(|m| m.modified()).ok();
    let inputs = [dir.join("app.js"), dir.join("package-lock.json"), root.join("wit/v0.1.0/plugin.wit")];
    let fresh = built
        .is_some_and(|b| inputs.iter().all(|f| std::fs::metadata(f).and_then(|m| m.modified()).is_ok_and(|m| m <= b)));
    if fresh {
        eprintln!("xtask: {} is up to date", raw.display());
    } else {
        if !dir.join("node_modules/.bin/componentize-js").exists() {
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
        }
        std::fs::create_dir_all(dir.join("target"))?;
        run(Command::new(dir.join("node_modules/.bin/componentize-js"))
            .args(["app.js", "--wit", "../../wit/v0.1.0", "--world-name", "presence-states"])
            .args(["-o", "target/js-quiet-hours.raw.wasm"])
            .current_dir(&dir))?;
    }
    run(Command::new(halo)
        .args(["plugin", "pack", "target/js-quiet-hours.raw.wasm", "--manifest", "manifest.json"])
        .args(["-o", "target/js-quiet-hours.wasm"])
        .current_dir(&dir))
}

/// Debian packages the web client's end-to-end test drives (`host/halo/tests/web.rs`).
const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Makes sure headless Chromium and chromedriver are installed: as root with apt-get, else
/// with non-interactive sudo, else a clear message saying what to install.
fn browser() -> anyhow::Result<()> {
    let present = || {
        ["HALO_CHROMIUM", "HALO_CHROMEDRIVER"]
            .iter()
            .zip(["/usr/bin/chromium", "/usr/bin/chromedriver"])
            .all(|(var, default)| std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from).exists())
    };
    if !present() {
        eprintln!("xtask: installing {} for the web client's end-to-end test", BROWSER_PACKAGES.join(" "));
        apt_install(&BROWSER_PACKAGES)?;
    }
    if !present() {
        bail!(
            "the web client's end-to-end test needs headless Chromium: `sudo apt-get install {}` \
             (or set HALO_CHROMIUM and HALO_CHROMEDRIVER to their paths)",
            BROWSER_PACKAGES.join(" ")
        );
    }
    Ok(())
}

/// Makes sure Prosody is installed for the bench's side-by-side XMPP test
/// (`host/bench/tests/prosody.rs`) and the xmpp adapter's test (`host/halo/tests/federation_xmpp.rs`),
/// which start their own instances on loopback.
fn prosody() -> anyhow::Result<()> {
    let present = || Command::new("sh").args(["-c", "command -v prosody"]).output().is_ok_and(|o| o.status.success());
    if !present() {
        eprintln!("xtask: installing prosody for the bench's side-by-side XMPP test");
        apt_install(&["prosody"])?;
        // The package starts a system service; the test runs its own instance.
        let _ = Command::new("sh").args(["-c", "service prosody stop >/dev/null 2>&1"]).status();
    }
    if !present() && std::env::var_os("CI").is_some() {
        bail!("the bench's XMPP test needs Prosody: `sudo apt-get install prosody`");
    }
    Ok(())
}

/// The slixmpp release the xmpp adapter's test drives its XMPP user with.
const SLIXMPP: &str = "slixmpp==1.17.0";

/// Makes sure slixmpp (PyPI) is installed for the xmpp federation adapter's end-to-end test
/// (`host/halo/tests/federation_xmpp.rs`, whose XMPP user is `tests/xmpp/client.py`).
fn slixmpp() -> anyhow::Result<()> {
    let present = || Command::new("python3").args(["-c", "import slixmpp"]).output().is_ok_and(|o| o.status.success());
    if !present() {
        eprintln!("xtask: installing {SLIXMPP} from PyPI for the xmpp adapter's test");
        let _ = run(Command::new("python3").args(["-m", "pip", "install", "--quiet", SLIXMPP]));
    }
    if !present() && std::env::var_os("CI").is_some() {
        bail!("the xmpp adapter's test needs slixmpp: `python3 -m pip install {SLIXMPP}` (Python 3.11+)");
    }
    Ok(())
}

/// `apt-get install` as root, or with non-interactive sudo; nothing (the caller reports) when
/// neither is possible.
fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let sudo = !root && Command::new("sudo").args(["-n", "true"]).status().is_ok_and(|s| s.success());
    if !root && !sudo {
        return Ok(());
    }
    let apt = |args: &[&str]| {
        let mut c = if sudo { Command::new("sudo") } else { Command::new("apt-get") };
        if sudo {
            c.arg("apt-get");
        }
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    apt(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    apt(&install)
}
