//! Blocking helpers over the `fantoccini` WebDriver client for the end-to-end tests: starts
//! Debian's `chromedriver` and opens headless Chromium sessions, each with its own profile (its
//! own cookies and localStorage, so each is a separate user). The protocol is fantoccini's; this
//! module only keeps the tests synchronous (one small tokio runtime per driver) and holds the
//! waiting conventions: bounded polls for a visible element or a text, never fixed sleeps.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ElementRef};
use fantoccini::error::CmdError;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// How long a wait for an element or a text may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// The W3C key of an element reference in a script's result.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn program(var: &str, default: &str) -> PathBuf {
    let p = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        p.exists(),
        "{} is missing: install Debian's `chromium` and `chromium-driver` (cargo xtask test and .ci/run do), \
         or point {var} at it",
        p.display()
    );
    p
}

/// A running chromedriver, and the runtime fantoccini's sessions run on.
pub struct Driver {
    url: String,
    child: Child,
    rt: Runtime,
}

impl Driver {
    /// Starts `chromedriver` (`HALO_CHROMEDRIVER`, default `/usr/bin/chromedriver`) on a port the
    /// system picks, and waits until it says it listens.
    pub fn start() -> Self {
        let bin = program("HALO_CHROMEDRIVER", "/usr/bin/chromedriver");
        let mut child = Command::new(bin)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        // "ChromeDriver was started successfully on port 40213." comes once it listens; the
        // rest of its output is drained so that it never blocks on a full pipe.
        let stdout = child.stdout.take().expect("chromedriver's stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) =
                    line.split("on port ").nth(1).and_then(|p| p.trim_end_matches('.').parse::<u16>().ok())
                    && port != 0
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx.recv_timeout(WAIT).expect("chromedriver did not start");
        // One worker thread, so that fantoccini's session tasks and pooled connections keep
        // running between the blocking calls.
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("tokio runtime");
        Self { url: format!("http://127.0.0.1:{port}"), child, rt }
    }

    /// Opens a headless Chromium (`HALO_CHROMIUM`, default `/usr/bin/chromium`) with a fresh
    /// profile and a `width`×`height` window.
    pub fn browser(&self, width: u32, height: u32) -> Browser<'_> {
        let binary = program("HALO_CHROMIUM", "/usr/bin/chromium");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--force-color-profile=srgb",
            "--hide-scrollbars",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": {"binary": binary, "args": args}});
        let caps: Capabilities = serde_json::from_value(caps).expect("capabilities");
        let client = self
            .rt
            .block_on(ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&self.url))
            .expect("new chromium session");
        Browser { rt: &self.rt, client, _profile: profile }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session (one user).
pub struct Browser<'d> {
    rt: &'d Runtime,
    client: Client,
    _profile: tempfile::TempDir,
}

/// Chromium's `POST /session/{id}/goog/cdp/execute`: one Chrome DevTools Protocol command.
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.0.to_string()))
    }
}

/// Finds the first visible element matching a CSS selector whose text contains the given text
/// (any text when empty); returns it or null.
const FIND: &str = r#"
const [sel, text] = arguments;
for (const el of document.querySelectorAll(sel)) {
  const r = el.getBoundingClientRect();
  const visible = r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden";
  const t = (el.innerText || el.textContent || el.value || "");
  if (visible && (!text || t.includes(text))) return el;
}
return null;"#;

impl Browser<'_> {
    fn run<T>(&self, f: impl Future<Output = Result<T, CmdError>>) -> Result<T, CmdError> {
        self.rt.block_on(f)
    }

    /// The element a script returned, if it returned one.
    fn element(&self, v: &Value) -> Option<Element> {
        let id = v.get(ELEMENT)?.as_str()?;
        Some(Element::from_element_id(self.client.clone(), ElementRef::from(id.to_owned())))
    }

    /// Runs `script` (a function body using `arguments`) in the page; `args` is a JSON array.
    pub fn script(&self, script: &str, args: Value) -> Value {
        let args = match args {
            Value::Array(args) => args,
            other => vec![other],
        };
        self.run(self.client.execute(script, args)).expect("script")
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        self.run(self.client.goto(url)).expect("navigate");
    }

    /// Resizes the window (e.g. to a phone's width).
    pub fn resize(&self, width: u32, height: u32) {
        self.run(self.client.set_window_size(width, height)).expect("resize");
    }

    /// Runs a Chrome DevTools Protocol command (e.g. `Emulation.setEmulatedMedia`).
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.run(self.client.issue_cmd(Cdp(json!({"cmd": cmd, "params": params})))).expect("cdp")
    }

    /// Reloads the page.
    pub fn refresh(&self) {
        self.run(self.client.refresh()).expect("refresh");
    }

    fn find_now(&self, css: &str, text: &str) -> Option<Element> {
        let v = self.run(self.client.execute(FIND, vec![json!(css), json!(text)])).ok()?;
        self.element(&v)
    }

    /// Polls `f` until it yields a value, for at most [`WAIT`].
    fn poll<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                let body = self.script("return document.body.innerText.slice(0, 3000)", json!([]));
                panic!("timed out waiting for {what}; the page shows:\n{}", body.as_str().unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a visible element matching `css` exists.
    pub fn wait(&self, css: &str) {
        self.poll(css, || self.find_now(css, ""));
    }

    /// Waits until a visible element matching `css` contains `text`.
    pub fn wait_text(&self, css: &str, text: &str) {
        self.poll(&format!("{css} containing {text:?}"), || self.find_now(css, text));
    }

    /// Waits until no visible element matching `css` contains `text`.
    pub fn wait_no_text(&self, css: &str, text: &str) {
        self.poll(&format!("no {css} containing {text:?}"), || self.find_now(css, text).is_none().then_some(()));
    }

    /// Waits until no visible element matches `css`.
    pub fn wait_gone(&self, css: &str) {
        self.poll(&format!("{css} to go"), || self.find_now(css, "").is_none().then_some(()));
    }

    /// The text of the first visible element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let el = self.poll(css, || self.find_now(css, ""));
        self.run(el.text()).unwrap_or_default()
    }

    /// Clicks the first visible element matching `css` (and containing `text`, when given),
    /// waiting for it; retries while the page re-renders it.
    pub fn click_text(&self, css: &str, text: &str) {
        self.poll(&format!("clickable {css} {text:?}"), || {
            let el = self.find_now(css, text)?;
            self.run(el.click()).ok()
        });
    }

    /// Clicks the first visible element matching `css`.
    pub fn click(&self, css: &str) {
        self.click_text(css, "");
    }

    /// Types `text` into the element matching `css` (after clearing it when `clear`).
    pub fn type_in(&self, css: &str, text: &str, clear: bool) {
        self.poll(&format!("typable {css}"), || {
            let el = self.find_now(css, "")?;
            if clear {
                self.run(el.clear()).ok()?;
            }
            self.run(el.send_keys(text)).ok()
        });
    }

    /// Types into `css`, replacing what it holds.
    pub fn fill(&self, css: &str, text: &str) {
        self.type_in(css, text, true);
    }

    /// Hands a local file to an `<input type=file>`.
    pub fn upload(&self, css: &str, file: &Path) {
        let file = file.canonicalize().expect("file to upload");
        let el = self.poll(css, || {
            let v = self.script("return document.querySelector(arguments[0])", json!([css]));
            self.element(&v)
        });
        self.run(el.send_keys(&file.display().to_string())).expect("upload");
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.run(self.client.screenshot()).expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.client.clone().close());
    }
}
