//! Headless Chromium driven through chromedriver over the W3C WebDriver protocol (plain HTTP with
//! ureq), chromedriver started through the shared harness: for the dashboard's tests.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! browser tests are skipped loudly, unless CI is set, where they fail. `CHROMIUM` and
//! `CHROMEDRIVER` name other binaries.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logstats_shared::testing::spawn::{free_port, Binary, Spawned};
use serde_json::{json, Value};

/// Whether `url` answers 200 (within 5 s).
pub fn answers_200(url: &str) -> bool {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .is_ok_and(|response| response.status() == 200)
}

pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// `name` when it is an executable file, else the first `name` on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.components().count() > 1 {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The browser and its driver, or `None` (after saying so) when they are missing outside CI.
pub fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let chromedriver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    match (find_program(&chromium), find_program(&chromedriver)) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        missing => {
            let message = format!(
                "the dashboard's browser test needs `{chromium}` and `{chromedriver}` \
                 (found: {missing:?}); install Debian's chromium and chromium-driver"
            );
            assert!(!is_ci(), "{message}");
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

/// The key of a web element reference in W3C WebDriver.
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session in headless Chromium, over HTTP with ureq; ended when dropped.
pub struct Browser {
    session: String,
    // Dropped after the session is deleted: fields drop in order of declaration.
    _driver: Spawned,
}

impl Browser {
    pub fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let status = format!("{base}/status");
        let driver = Binary::new(chromedriver)
            .arg(format!("--port={port}"))
            .start_ready(Duration::from_secs(30), |_| answers_200(&status));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1360,1400", "--force-device-scale-factor=1", "--lang=en-US",
                    "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = webdriver(&base, "POST", "/session", Some(&capabilities))["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            session: format!("{base}/session/{session}"),
            _driver: driver,
        }
    }

    pub fn get(&self, path: &str) -> Value {
        webdriver(&self.session, "GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Value {
        webdriver(&self.session, "POST", path, Some(&body))
    }

    pub fn open(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css}));
        found
            .as_array()
            .expect("a list of elements")
            .iter()
            .map(|e| e[ELEMENT_KEY].as_str().expect("an element id").to_string())
            .collect()
    }

    pub fn find(&self, css: &str) -> String {
        let found = self.find_all(css);
        assert_eq!(found.len(), 1, "exactly one element matches {css}");
        found.into_iter().next().expect("one element")
    }

    pub fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .as_str()
            .expect("text")
            .to_string()
    }

    pub fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.get(&format!("/element/{element}/attribute/{name}"))
            .as_str()
            .map(str::to_string)
    }

    pub fn property(&self, element: &str, name: &str) -> Value {
        self.get(&format!("/element/{element}/property/{name}"))
    }

    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": args}))
    }

    /// Types `date` (YYYY-MM-DD, as the page shows dates whatever the locale) into the date
    /// field `css`.
    pub fn type_date(&self, css: &str, date: &str) {
        let input = self.find(css);
        self.post(&format!("/element/{input}/clear"), json!({}));
        self.post(&format!("/element/{input}/value"), json!({ "text": date }));
        assert_eq!(self.property(&input, "value"), json!(date), "typed {date}");
    }

    /// Runs `script` in every page opened from now on, before the page's own scripts
    /// (chromedriver's Chrome DevTools Protocol endpoint).
    pub fn run_before_every_page(&self, script: &str) {
        self.post(
            "/goog/cdp/execute",
            json!({
                "cmd": "Page.addScriptToEvaluateOnNewDocument",
                "params": { "source": script },
            }),
        );
    }

    /// Resizes the browser's window (the page's layout follows).
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height }));
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.post(&format!("/element/{element}/click"), json!({}));
    }

    /// Waits until the page says it has finished showing the view of `query` (`?customer=..`).
    pub fn wait_ready(&self, query: &str) {
        let body = self.find("body");
        let started = Instant::now();
        loop {
            let ready = self.attribute(&body, "data-ready");
            if ready.as_deref() == Some(query) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page never became ready for {query} (data-ready {ready:?}); console: {:?}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The browser console's entries since the last call (chromedriver 156 serves the legacy log
    /// endpoint at `/se/log`, as Selenium 4 calls it, and at `/log`).
    pub fn console(&self) -> Vec<Value> {
        let entries = self.post("/se/log", json!({"type": "browser"}));
        entries.as_array().expect("log entries").clone()
    }

    pub fn screenshot(&self, path: &Path) {
        let encoded = self.get("/screenshot");
        let png = base64_decode(encoded.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("create target/");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.session)
            .timeout(Duration::from_secs(10))
            .call();
    }
}

/// One WebDriver command; panics with the driver's message on an error.
pub fn webdriver(base: &str, method: &str, path: &str, body: Option<&Value>) -> Value {
    let request = ureq::request(method, &format!("{base}{path}")).timeout(Duration::from_secs(60));
    let result = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    match result {
        Ok(response) => {
            let mut answer: Value = response.into_json().expect("WebDriver answers JSON");
            answer["value"].take()
        }
        Err(ureq::Error::Status(status, response)) => {
            let answer = response.into_string().unwrap_or_default();
            panic!("WebDriver {method} {path}: {status} {answer}")
        }
        Err(error) => panic!("WebDriver {method} {path}: {error}"),
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    for chunk in bytes.chunks(4) {
        let mut word = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            word |= value(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&word.to_be_bytes()[1..chunk.len()]);
    }
    out
}

pub fn workspace_target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("target")
}
