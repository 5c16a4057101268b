//! A small blocking W3C WebDriver client for the end-to-end tests: starts Debian's
//! `chromedriver` and opens headless Chromium sessions, each with its own profile (its own
//! cookies and localStorage, so each is a separate user). Waits are bounded polls for an
//! element or a text, never fixed sleeps.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// How long a wait for an element or a text may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
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

/// A running chromedriver.
pub struct Driver {
    url: String,
    child: Child,
    agent: ureq::Agent,
}

impl Driver {
    /// Starts `chromedriver` (`HALO_CHROMEDRIVER`, default `/usr/bin/chromedriver`) on a free port.
    pub fn start() -> Self {
        let bin = program("HALO_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let driver = Self { url: format!("http://127.0.0.1:{port}"), child, agent };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(v) = driver.call("GET", "/status", None)
                && v["ready"] == true
            {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.url);
        let resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(body.cloned().unwrap_or_else(|| json!({}))),
        };
        let mut resp = resp.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))?;
        if status >= 400 {
            return Err(format!("{}: {}", v["value"]["error"], v["value"]["message"]));
        }
        Ok(v["value"].clone())
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
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args},
        }}});
        let v = self.call("POST", "/session", Some(&caps)).expect("new chromium session");
        let session = v["sessionId"].as_str().expect("session id").to_owned();
        Browser { driver: self, session, _profile: profile }
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
    driver: &'d Driver,
    session: String,
    _profile: tempfile::TempDir,
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
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.driver.call(method, &format!("/session/{}{path}", self.session), body.as_ref())
    }

    /// Runs `script` (a function body using `arguments`) in the page.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).expect("script")
    }

    /// Loads `url`.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).expect("navigate");
    }

    /// Resizes the window (e.g. to a phone's width).
    pub fn resize(&self, width: u32, height: u32) {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height}))).expect("resize");
    }

    /// Runs a Chrome DevTools Protocol command (e.g. `Emulation.setEmulatedMedia`).
    pub fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.call("POST", "/goog/cdp/execute", Some(json!({"cmd": cmd, "params": params}))).expect("cdp")
    }

    /// Reloads the page.
    pub fn refresh(&self) {
        self.call("POST", "/refresh", None).expect("refresh");
    }

    fn find_now(&self, css: &str, text: &str) -> Option<String> {
        let v = self.call("POST", "/execute/sync", Some(json!({"script": FIND, "args": [css, text]}))).ok()?;
        v.get(ELEMENT).and_then(Value::as_str).map(str::to_owned)
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
        self.call("GET", &format!("/element/{el}/text"), None)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Clicks the first visible element matching `css` (and containing `text`, when given),
    /// waiting for it; retries while the page re-renders it.
    pub fn click_text(&self, css: &str, text: &str) {
        self.poll(&format!("clickable {css} {text:?}"), || {
            let el = self.find_now(css, text)?;
            self.call("POST", &format!("/element/{el}/click"), None).ok()
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
                self.call("POST", &format!("/element/{el}/clear"), None).ok()?;
            }
            self.call("POST", &format!("/element/{el}/value"), Some(json!({"text": text}))).ok()
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
            v.get(ELEMENT).and_then(Value::as_str).map(str::to_owned)
        });
        self.call("POST", &format!("/element/{el}/value"), Some(json!({"text": file.display().to_string()})))
            .expect("upload");
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        let v = self.call("GET", "/screenshot", None).expect("screenshot");
        let png = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).expect("base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
    }
}
