//! The web UI in a real browser: headless Chromium driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them), against real `agora up` nodes on
//! loopback. Skips, saying so, when the browser is not installed.
//!
//! With `AGORA_SCREENSHOTS=1` it writes the screenshots of the main pages to `docs/screenshots/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

// ---------------------------------------------------------------------------------------------
// A minimal WebDriver client: blocking HTTP/1.1 with JSON, one connection per command.

/// Sends one HTTP request to `addr`; returns the status and the body.
fn http(addr: &str, method: &str, path: &str, host: &str, body: Option<&Value>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    // Read the head, then exactly the body its Content-Length announces (the server may keep
    // the connection open), or to the end.
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (head, body_start) = loop {
        let n = stream.read(&mut buf).unwrap();
        response.extend_from_slice(&buf[..n]);
        if let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break (
                String::from_utf8_lossy(&response[..at]).into_owned(),
                at + 4,
            );
        }
        assert!(n > 0, "connection closed before the response head");
    };
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = response[body_start..].to_vec();
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
        }
        None => {
            let _ = stream.read_to_end(&mut body);
        }
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rest = String::from_utf8_lossy(&body).into_owned();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { unchunk(&rest) } else { rest })
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// chromedriver, started on a free port, killed when dropped.
struct Driver {
    child: Child,
    addr: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + GUARD;
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, addr }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = http(&self.addr, method, path, &self.addr, body.as_ref());
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status == 200, "WebDriver {method} {path}: {status} {text}");
        value["value"].clone()
    }

    /// A new headless browser with a fresh profile.
    fn browser(&self, profile: &Path) -> Browser<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1100,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let value = self.call("POST", "/session", Some(caps));
        let browser = Browser {
            driver: self,
            session: value["sessionId"].as_str().unwrap().to_owned(),
        };
        // A page that cannot load within this fails the step instead of stalling it: pages that
        // kept their live streams once made a click wait a minute for a free connection.
        browser.call("POST", "/timeouts", Some(json!({ "pageLoad": 20_000 })));
        browser
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl Browser<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_owned()
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn find(&self, css: &str) -> String {
        let value = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        value
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    }

    fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        );
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    fn text(&self) -> String {
        self.js("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page's text contains `what`, reloading it each time if `reload`.
    fn until_text(&self, what: &str, reload: bool) {
        let deadline = Instant::now() + GUARD;
        while !self.text().contains(what) {
            assert!(
                Instant::now() < deadline,
                "the page never showed {what:?}; it shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(200));
            if reload {
                self.call("POST", "/refresh", Some(json!({})));
            }
        }
    }

    /// Every resource the page loaded came from `origin`.
    fn assert_only_from(&self, origin: &str) {
        let names = self.js(
            "return performance.getEntriesByType('resource').map(e => e.name)\
             .concat([location.href]);",
        );
        for name in names.as_array().unwrap() {
            let name = name.as_str().unwrap();
            assert!(
                name.starts_with(origin),
                "{name} is not from the node's origin {origin}"
            );
        }
    }

    /// What a person using a keyboard, a screen reader, a phone or weak eyes would trip over on
    /// this page; an empty list when nothing. Checks: the page's language; one `h1`; a label on
    /// every control; alternative text on every image; a name on every link and button; no
    /// control taken out of the tab order; text contrast of at least 4.5:1 (3:1 for large
    /// text, WCAG AA) against the background it is drawn on; nothing wider than the window.
    fn audit(&self) -> Vec<String> {
        let problems = self.js(AUDIT);
        problems
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    }

    /// Presses and releases a key (a WebDriver key code such as `"\u{E004}"`, Tab).
    fn press(&self, key: &str) {
        self.call(
            "POST",
            "/actions",
            Some(
                json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
                ]}]}),
            ),
        );
    }

    /// The focused element's tag, text and whether it is drawn with a visible outline.
    fn focused(&self) -> Value {
        self.js(
            "const e = document.activeElement; const s = getComputedStyle(e); \
             const r = e.getBoundingClientRect(); \
             return [e.tagName, e.textContent.trim(), s.outlineStyle !== 'none' \
             && parseFloat(s.outlineWidth) >= 2 && r.left >= 0 && r.top >= 0];",
        )
    }

    fn screenshot(&self, name: &str) {
        if std::env::var_os("AGORA_SCREENSHOTS").is_none() {
            return;
        }
        let data = self.call("GET", "/screenshot", None);
        let bytes = data_encoding::BASE64
            .decode(data.as_str().unwrap().as_bytes())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = http(
            &self.driver.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &self.driver.addr,
            None,
        );
    }
}

/// The page audit of [`Browser::audit`], run in the page.
const AUDIT: &str = r#"
const problems = [];
const where = (e) => e.outerHTML.slice(0, 90);
if (!document.documentElement.lang) problems.push("no lang on <html>");
if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
for (const c of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
  if (c.labels.length === 0 && !c.getAttribute("aria-label") && !c.getAttribute("aria-labelledby"))
    problems.push("control without a label: " + where(c));
}
for (const i of document.querySelectorAll("img")) {
  if (!i.hasAttribute("alt")) problems.push("image without alt: " + where(i));
}
for (const a of document.querySelectorAll("a[href], button")) {
  if (!a.textContent.trim() && !a.getAttribute("aria-label") && !a.querySelector("img[alt]:not([alt=''])"))
    problems.push("link or button without a name: " + where(a));
  if (a.tabIndex < 0) problems.push("out of the tab order: " + where(a));
}
const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const background = (e) => {
  for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
  }
  return [255, 255, 255];
};
for (const e of document.body.querySelectorAll("*")) {
  const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !e.getClientRects().length) continue;
  const style = getComputedStyle(e);
  if (style.visibility === "hidden") continue;
  const fg = lum(rgb(style.color)), bg = lum(background(e));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
  const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  if (ratio < needed) problems.push("contrast " + ratio.toFixed(2) + " < " + needed + ": " + where(e));
}
if (document.documentElement.scrollWidth > window.innerWidth + 1)
  problems.push("wider than the window: " + document.documentElement.scrollWidth + " > " + window.innerWidth);
return problems;
"#;

// ---------------------------------------------------------------------------------------------

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The subwiki id in an invite.
fn subwiki_of(invite: &str) -> String {
    invite
        .trim_start_matches("agora:")
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

fn origin(up: &Up) -> String {
    format!("http://{}", up.api)
}

#[test]
fn two_people_use_agora_in_their_browsers() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        // CI sets this once it has installed them: there a missing browser is a failure.
        assert!(
            std::env::var_os("AGORA_REQUIRE_BROWSER").is_none(),
            "AGORA_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!(
            "SKIPPED: the browser test needs {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver; .ci/run installs them)"
        );
        return;
    }
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, c) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    for home in [a, b, c] {
        ok(home, &["init"]);
    }
    let a_up = Up::start(a, &["--api", "127.0.0.1:0"]);
    let b_up = Up::start(b, &["--api", "127.0.0.1:0"]);
    let driver = Driver::start();
    let alice = driver.browser(dirs[3].path());
    let bob = driver.browser(dirs[4].path());

    // Alice signs in with the link `agora up` printed, and onboards: a name, a subwiki.
    alice.go(&a_up.ui);
    alice.until_text("Welcome to Agora", false);
    alice.screenshot("onboarding");
    alice.fill("#c-display", "Alice");
    alice.fill("#c-name", "Gardening");
    alice.fill("#c-desc", "Growing things in small places.");
    alice.click("#create-h + form button[type=submit]");
    alice.until_text("Invite someone", false);
    alice.assert_only_from(&origin(&a_up));
    let invite = alice
        .js("return document.querySelector('#invite').value;")
        .as_str()
        .unwrap()
        .to_owned();
    assert!(invite.starts_with("agora:sw_"), "{invite}");

    // A post with a link and an image.
    let image = dirs[5].path().join("tomato.png");
    std::fs::write(&image, PNG).unwrap();
    alice.go(&format!("{}/new", origin(&a_up)));
    alice.fill("#e-title", "Tomatoes in pots");
    alice.fill("#e-link", "https://example.org/tomatoes");
    alice.fill(
        "#e-body",
        "They need sun, six hours a day.\n\nWater them every morning.",
    );
    alice.fill("#e-tags", "vegetables, balcony");
    alice.fill("#e-image", image.to_str().unwrap());
    alice.screenshot("editor");
    alice.click("form.editor button[type=submit]");
    alice.until_text("They need sun", false);
    let post_url = alice.url();
    assert!(post_url.contains("/post/doc_"), "{post_url}");
    let loaded = alice
        .js("const i = document.querySelector('img'); return i && i.complete && i.naturalWidth;");
    assert_eq!(loaded, json!(1), "the image is shown");
    alice.assert_only_from(&origin(&a_up));
    let post_path = post_url
        .split_once("/post/")
        .map(|(_, p)| format!("/post/{p}"))
        .unwrap();

    // Bob joins by pasting the invite, and sees the post.
    bob.go(&b_up.ui);
    bob.until_text("Welcome to Agora", false);
    bob.fill("#j-display", "Bob");
    bob.fill("#j-invite", &invite);
    bob.click("#join-h + form button[type=submit]");
    bob.until_text("Tomatoes in pots", true);
    bob.assert_only_from(&origin(&b_up));

    // Alice opens the editor; meanwhile Bob edits paragraph 2 and saves; then Alice edits
    // paragraph 1 in the editor she opened before, and saves: both changes stay.
    alice.go(&format!("{}{post_path}/edit", origin(&a_up)));
    alice.until_text("merged with theirs", false);
    bob.go(&format!("{}{post_path}/edit", origin(&b_up)));
    bob.until_text("merged with theirs", false);
    bob.fill(
        "#e-body",
        "They need sun, six hours a day.\n\nWater them every morning, at the roots.",
    );
    // Bob adds a second image as he edits (another file: the PNG with a byte after its end).
    let second = dirs[5].path().join("tomato-2.png");
    std::fs::write(&second, [PNG, b"2"].concat()).unwrap();
    bob.fill("#e-image", second.to_str().unwrap());
    bob.click("form.editor button[type=submit]");
    bob.until_text("at the roots", false);
    // Alice's node has Bob's edit before she saves (it would merge anyway; waiting makes the
    // "merged" notice certain).
    until(
        a,
        &["post", "show", &post_path[6..]],
        "Bob's edit at A",
        |v| {
            v["body"]
                .as_str()
                .is_some_and(|b| b.contains("at the roots"))
        },
    );
    alice.fill(
        "#e-body",
        "They need full sun, six hours a day.\n\nWater them every morning.",
    );
    alice.click("form.editor button[type=submit]");
    alice.until_text("Your changes were merged", false);
    alice.until_text("They need full sun", false);
    alice.until_text("at the roots", false);
    assert_eq!(
        alice.js("return document.querySelectorAll('article img').length;"),
        json!(2),
        "Bob's added image survives Alice's concurrent save"
    );
    alice.screenshot("post");
    bob.go(&format!("{}{post_path}", origin(&b_up)));
    bob.until_text("They need full sun", true);
    bob.until_text("at the roots", false);

    // Alice watches her post; Bob comments; the comment appears on Alice's page, not reloaded.
    alice.go(&format!("{}{post_path}", origin(&a_up)));
    alice.until_text("Comments (0)", false);
    alice.js("window.agoraNotReloaded = true; return true;");
    bob.fill("#comment", "Mine like a little shade in July.");
    bob.click("form[action$='/comment'] button");
    bob.until_text("a little shade", false);
    alice.until_text("a little shade in July", false);
    assert_eq!(
        alice.js("return window.agoraNotReloaded === true;"),
        json!(true),
        "the comment came without a reload"
    );

    // Alice's inbox badge counts Bob's edit and comment, without a reload; the inbox says what
    // they are. Bob follows Alice from her post: it is in his "Following" feed.
    let deadline = Instant::now() + GUARD;
    while alice.js("return document.querySelector('[data-inbox-count]').textContent;") != json!("2")
    {
        assert!(
            Instant::now() < deadline,
            "the inbox badge does not count 2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    alice.go(&format!("{}/inbox", origin(&a_up)));
    alice.until_text("commented on your post", false);
    alice.until_text("edited your post", false);
    alice.screenshot("inbox");
    bob.click("form.follow button");
    bob.until_text("Unfollow", false);
    bob.go(&format!("{}/feed?following=1", origin(&b_up)));
    bob.until_text("Tomatoes in pots", false);

    // The subwiki page lists the members with their names: Bob edited and commented.
    alice.go(&format!(
        "{}/subwiki/{}",
        origin(&a_up),
        subwiki_of(&invite)
    ));
    alice.until_text("Members and roles", false);
    let members = alice.js(
        "return [...document.querySelectorAll('#members-h ~ .scroll tbody tr')]\
         .map(r => [...r.cells].map(c => c.innerText));",
    );
    let members = members.as_array().unwrap();
    assert_eq!(members.len(), 2, "{members:?}");
    assert_eq!(members[0][0], json!("Alice"));
    assert_eq!(members[0][2], json!("founder"));
    assert_eq!(members[1][0], json!("Bob"));
    assert_eq!(members[1][2], json!("member"));
    alice.screenshot("subwiki");

    // The feed, the node page, for the screenshots (and their origin).
    alice.go(&format!("{}/feed", origin(&a_up)));
    alice.until_text("Tomatoes in pots", false);
    alice.assert_only_from(&origin(&a_up));
    alice.screenshot("feed");
    // At phone width, the same feed (for the screenshot; the layout is one column).
    alice.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    alice.go(&format!("{}/feed", origin(&a_up)));
    alice.until_text("Tomatoes in pots", false);
    alice.screenshot("feed-phone");
    alice.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 1100, "height": 900})),
    );
    alice.go(&format!("{}/node", origin(&a_up)));
    alice.until_text("Identity", false);
    alice.screenshot("node");

    // Search from the box in the navigation: the post is found by words of its body, which
    // its snippet marks.
    alice.fill(".navsearch input", "water morning");
    alice.press("\u{E007}");
    alice.until_text("Tomatoes in pots", true);
    assert!(alice.url().contains("/search?q=water"), "{}", alice.url());
    assert_eq!(
        alice.js("return [...document.querySelectorAll('.snippet mark')].map(m => m.innerText.toLowerCase());"),
        json!(["water", "morning"])
    );
    alice.screenshot("search");

    // History: every version, and a revert to the first.
    alice.go(&format!("{}{post_path}/history", origin(&a_up)));
    alice.until_text("History of", false);
    let versions = alice.js("return document.querySelectorAll('.history > li').length;");
    assert_eq!(versions, json!(3), "the post, Bob's edit, Alice's edit");
    alice.screenshot("history");
    alice.click(".history > li:last-child form button");
    let deadline = Instant::now() + GUARD;
    while alice.url().contains("/history") {
        assert!(
            Instant::now() < deadline,
            "the revert did not lead to the post"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    alice.until_text("Water them every morning.", false);
    let text = alice.text();
    assert!(!text.contains("at the roots"), "reverted: {text}");
    assert!(!text.contains("full sun"), "reverted: {text}");

    // Two trusted members hide the post; a third node's feed leaves it out. Alice (the
    // founder) vouches for Bob with the CLI, then both vote hide in their browsers.
    let subwiki = subwiki_of(&invite);
    let c_up = Up::start(c, &["--api", "127.0.0.1:0"]);
    ok(c, &["subwiki", "join", &invite]);
    until(c, &["feed"], "the post at C", |f| {
        titles(f).contains(&"Tomatoes in pots".to_owned())
    });
    let bob_id = json(b, &["whoami"])["author"].as_str().unwrap().to_owned();
    alice.go(&format!("{}/subwiki/{subwiki}/moderation", origin(&a_up)));
    alice.until_text("Moderation of Gardening", false);
    alice.fill("#m-author", &bob_id);
    alice.click("form[action$='/moderation'] button[type=submit]");
    let deadline = Instant::now() + GUARD;
    while alice.js("return document.querySelectorAll('#live tbody tr').length;") != json!(1) {
        assert!(Instant::now() < deadline, "the vouch is not in the log");
        std::thread::sleep(Duration::from_millis(100));
    }
    alice.until_text("counted", false);
    alice.screenshot("moderation");
    until(b, &["modlog", &subwiki], "Bob trusted at B", |log| {
        log["trusted"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x.as_str() == Some(bob_id.as_str())))
    });
    for (browser, up) in [(&alice, &a_up), (&bob, &b_up)] {
        browser.go(&format!("{}{post_path}", origin(up)));
        browser.until_text("Votes", false);
        browser.click("form[action$='/vote'] button[value=hide]");
        browser.until_text("Counted:", false);
    }
    until(c, &["feed"], "the post hidden at C", |f| {
        !titles(f).contains(&"Tomatoes in pots".to_owned())
    });
    alice.go(&format!("{}/feed?hidden=1", origin(&a_up)));
    alice.until_text("hidden", true);

    // Every page, at desktop and at phone width, passes the audit (labels, names, contrast,
    // one column that fits the phone).
    let subwiki_path = format!("/subwiki/{subwiki}");
    let pages = [
        "/feed",
        "/subwikis",
        subwiki_path.as_str(),
        &format!("{subwiki_path}/moderation"),
        &format!("/new?subwiki={subwiki}"),
        post_path.as_str(),
        &format!("{post_path}/edit"),
        &format!("{post_path}/history"),
        "/node",
        "/search?q=water&newest=1",
        "/inbox",
        "/feed?following=1",
    ];
    for (width, height) in [(1100, 900), (390, 844)] {
        alice.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
        for page in pages {
            alice.go(&format!("{}{page}", origin(&a_up)));
            let problems = alice.audit();
            assert!(problems.is_empty(), "{page} at {width} px: {problems:#?}");
        }
    }

    // With the keyboard alone: the first Tab shows the skip link, Enter moves to the content,
    // and the next Tab reaches the page's first control, each drawn with a visible focus ring.
    alice.go(&format!("{}/subwikis", origin(&a_up)));
    const TAB: &str = "\u{E004}";
    const ENTER: &str = "\u{E007}";
    alice.press(TAB);
    assert_eq!(alice.focused(), json!(["A", "Skip to content", true]));
    alice.press(ENTER);
    alice.press(TAB);
    let focused = alice.focused();
    assert!(
        focused[0] != json!("A") || !["Feed", "Agora"].contains(&focused[1].as_str().unwrap()),
        "Enter on the skip link skipped the navigation: {focused}"
    );
    assert_eq!(focused[2], json!(true), "a visible focus ring: {focused}");

    // A page asked for with a foreign Host is refused (DNS rebinding).
    let (status, _) = http(&a_up.api, "GET", "/feed", "evil.example:80", None);
    assert_eq!(status, 421);
    let (status, _) = http(&a_up.api, "GET", "/feed", &a_up.api, None);
    assert_eq!(status, 401, "no session cookie, no page");

    drop(alice);
    drop(bob);
    drop(c_up);
    drop(b_up);
    drop(a_up);
}

/// Issue 17 in the browser: alice retracts her post with the Retract button (a confirmation
/// page with an optional reason) and the post, on its page and in the feed, is a placeholder
/// saying by whom and when, without its content, on bob's node too; as the founder she redacts
/// bob's comment with a reason (required); then she leaves the subwiki and deletes it from her
/// node (a box to tick first).
#[test]
fn taking_things_back_in_the_browser() {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("AGORA_REQUIRE_BROWSER").is_none(),
            "AGORA_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing"
        );
        eprintln!("SKIPPED: the browser test needs {CHROMIUM} and {CHROMEDRIVER}");
        return;
    }
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = (dirs[0].path(), dirs[1].path());
    ok(a, &["init", "--name", "alice"]);
    ok(b, &["init", "--name", "bob"]);
    let a_up = Up::start(a, &["--api", "127.0.0.1:0"]);
    let b_up = Up::start(b, &["--api", "127.0.0.1:0"]);
    let subwiki = ok(a, &["subwiki", "create", "Ferns"]).trim().to_owned();
    let new_post = |title: &str, body: &str| {
        ok(
            a,
            &["post", "new", &subwiki, "--title", title, "--body", body],
        )
        .trim()
        .to_owned()
    };
    let spores = new_post("Spores", "A tiny secret about spores.");
    let fronds = new_post("Fronds", "Fronds unfold slowly.");
    let invite = ok(a, &["subwiki", "invite", &subwiki]);
    json(b, &["subwiki", "join", invite.trim()]);
    let comment = ok(b, &["comment", &fronds, "Buy my fern pills."])
        .trim()
        .to_owned();
    until(a, &["post", "show", &fronds], "bob's comment at A", |p| {
        p["comments"] == 1
    });
    let driver = Driver::start();
    let alice = driver.browser(dirs[2].path());
    alice.go(&a_up.ui);
    alice.until_text("Spores", false);
    let site = origin(&a_up);

    // Retract: the button leads to a confirmation page; the post becomes a placeholder.
    alice.go(&format!("{site}/post/{spores}"));
    alice.until_text("A tiny secret", false);
    alice.click("form[action$='/retract'] button");
    alice.until_text("Retract your post?", false);
    alice.until_text("It cannot be undone", false);
    let problems = alice.audit();
    assert!(problems.is_empty(), "the confirmation page: {problems:#?}");
    alice.fill("#r-reason", "posted too soon");
    alice.click("main form button[type=submit]");
    alice.until_text("Retracted by alice", false);
    let text = alice.text();
    assert!(text.contains("posted too soon"), "{text}");
    assert!(!text.contains("A tiny secret"), "{text}");
    assert!(!text.contains("Spores"), "{text}");
    assert!(
        !text.contains("Retract…"),
        "nothing left to retract: {text}"
    );
    let problems = alice.audit();
    assert!(problems.is_empty(), "a retracted post: {problems:#?}");
    alice.screenshot("retracted");
    alice.go(&format!("{site}/feed"));
    alice.until_text("Retracted by alice", false);
    assert!(!alice.text().contains("Spores"), "{}", alice.text());
    until(b, &["post", "show", &spores], "the retraction at B", |p| {
        p["retracted"]["by"]["name"] == "alice" && p["body"] == ""
    });

    // Redact bob's comment as the founder: a reason is required.
    alice.go(&format!("{site}/post/{fronds}"));
    alice.until_text("Buy my fern pills.", false);
    assert!(
        alice.text().contains("Retract…"),
        "her own post has a Retract button"
    );
    alice.click(&format!("#c-{comment} form button"));
    alice.until_text("Redact this comment?", false);
    assert_eq!(
        alice.js("return document.querySelector('#r-reason').required;"),
        json!(true)
    );
    alice.fill("#r-reason", "selling pills");
    alice.click("main form button[type=submit]");
    alice.until_text("Redacted by alice", false);
    let text = alice.text();
    assert!(text.contains("selling pills"), "{text}");
    assert!(!text.contains("fern pills"), "{text}");
    assert!(
        text.contains("Fronds unfold slowly."),
        "the post stays: {text}"
    );
    until(b, &["post", "show", &fronds], "the redaction at B", |p| {
        p["comment_list"][0]["retracted"]["redaction"] == true && p["comment_list"][0]["text"] == ""
    });

    // The moderation page's log has both, with who and why.
    alice.go(&format!("{site}/subwiki/{subwiki}/moderation"));
    alice.until_text("Log, newest first", false);
    let rows = alice.js("return [...document.querySelectorAll('#live tbody tr')]\
         .map(r => [r.cells[2].innerText, r.cells[3].innerText, r.cells[4].innerText]);");
    let rows = rows.as_array().unwrap();
    assert!(
        rows.contains(&json!(["redact", comment, "selling pills"])),
        "{rows:?}"
    );
    assert!(
        rows.contains(&json!(["retract", spores, "posted too soon"])),
        "{rows:?}"
    );

    // The placeholders and the confirmation page pass the audit at phone width too.
    alice.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 390, "height": 844})),
    );
    for page in [
        format!("/post/{spores}"),
        format!("/post/{fronds}"),
        format!("/post/{fronds}/retract"),
        "/feed".to_owned(),
        format!("/subwiki/{subwiki}"),
    ] {
        alice.go(&format!("{site}{page}"));
        let problems = alice.audit();
        assert!(problems.is_empty(), "{page} at 390 px: {problems:#?}");
    }
    alice.call(
        "POST",
        "/window/rect",
        Some(json!({"width": 1100, "height": 900})),
    );

    // Leave and delete: the box must be ticked; then the subwiki is gone from her node.
    alice.go(&format!("{site}/subwiki/{subwiki}"));
    alice.until_text("Leave and delete", false);
    let problems = alice.audit();
    assert!(problems.is_empty(), "the subwiki page: {problems:#?}");
    alice.click("form.purge input[name=confirm]");
    alice.click("form.purge button");
    alice.until_text("Start one", false);
    let yours = alice.js("return document.querySelector('#mine-h').parentElement.innerText;");
    assert!(!yours.as_str().unwrap().contains("Ferns"), "{yours}");
    assert_eq!(json(a, &["subwiki", "list"]), json!([]));
    drop(alice);
    drop(b_up);
    drop(a_up);
}
