//! The dashboard (`/` of the live view) in a real headless Chromium: the page is loaded from a
//! live run's server, and the test checks, in the page, that the supervision tree, both charts
//! and both feeds appear and then update, that a restart shows on its sensor, that a click on a
//! group pages through its sensors and a click on a sensor plots its values, and that the run's
//! end shows; then it saves a screenshot (`$CARGO_TARGET_TMPDIR/dashboard.png`, and
//! `dashboard-100k.png` at 100,000 sensors).
//!
//! Chromium is driven over its DevTools protocol (a WebSocket of JSON messages) with awc, the
//! HTTP client the live view's tests already use. The browser is Debian's `chromium` (or the
//! program named by `$CHROMIUM`); without it the test fails with a line saying how to install
//! it (`scripts/test` does).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix::Actor;
use actix_http::ws::Item;
use awc::ws;
use base64::Engine;
use futures::{SinkExt, StreamExt};
use sensor_actors::config::HttpConfig;
use sensor_actors::live::{LiveServer, LiveView};
use sensor_actors::Collector;
use serde_json::{json, Value};

/// Two nested groups, ungrouped sensors with failures (restarts all along) and a tight range
/// (anomalies), one planned panic (a restart to look for), rounds every 150 ms until the test ends the run.
const RUN: &str = r#"
[collection]
interval = "150ms"
read_timeout = "100ms"
rounds = 100000
seed = 21

[supervision]
max_restarts = 50
within = "10s"
backoff_min = "20ms"
backoff_max = "200ms"

[[groups]]
name = "line-a"
strategy = "one_for_all"
max_restarts = 20

[[groups]]
name = "line-b"
strategy = "rest_for_one"
max_restarts = 20
parent = "line-a"

[[sensors]]
count = 30
latency = ["2ms", "20ms"]
error_rate = 0.05
fatal_rate = 0.01
range = [20.0, 24.0]
faults = [ { round = 3, fault = "panic", sensor = "temperature-07" } ]

[[sensors]]
name = "a"
count = 5
group = "line-a"
latency = ["2ms", "10ms"]
fatal_rate = 0.02

[[sensors]]
name = "b"
count = 4
group = "line-b"
latency = ["2ms", "10ms"]
"#;

/// How long the page may take for any one thing to appear (generous: a debug build of 100,000
/// sensors on a loaded machine takes seconds per round).
const PATIENCE_MS: u64 = 60_000;

/// The browser: `$CHROMIUM`, else Debian's `chromium`.
fn chromium() -> String {
    let program = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_string());
    let found = Command::new(&program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "the dashboard test needs a headless Chromium and `{program}` did not run: install Debian's \
         `chromium` package (`apt-get install chromium`), run `scripts/test` (which installs it), or \
         name the browser in $CHROMIUM"
    );
    program
}

/// A headless Chromium with one page, driven over the DevTools protocol.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    socket: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    session: String,
    next_id: u64,
    /// Uncaught exceptions and `console.error` calls of the page.
    errors: Vec<String>,
}

impl Browser {
    async fn launch() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Chromium names its DevTools address on stderr; the rest of stderr is drained so that
        // it never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("ws://") {
                    let _ = found.send(line[at..].trim().to_string());
                }
            }
        });
        let url = address
            .recv_timeout(Duration::from_millis(PATIENCE_MS))
            .expect("Chromium did not name its DevTools address");
        let (_, socket) = awc::Client::new()
            .ws(url)
            .max_frame_size(64 << 20)
            .connect()
            .await
            .unwrap();
        let mut browser = Browser {
            child,
            _profile: profile,
            socket,
            session: String::new(),
            next_id: 0,
            errors: Vec::new(),
        };
        let target = browser
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call("Runtime.enable", json!({})).await;
        browser.call("Page.enable", json!({})).await;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
            )
            .await;
        browser
    }

    /// Sends one command (to the page, once attached) and waits for its answer; the events
    /// that arrive meanwhile are read for the page's errors.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket
            .send(ws::Message::Text(message.to_string().into()))
            .await
            .unwrap();
        let mut partial = Vec::new();
        loop {
            let frame = self.socket.next().await.expect("DevTools closed").unwrap();
            let text = match frame {
                ws::Frame::Text(bytes) => bytes.to_vec(),
                ws::Frame::Continuation(Item::FirstText(bytes) | Item::Continue(bytes)) => {
                    partial.extend_from_slice(&bytes);
                    continue;
                }
                ws::Frame::Continuation(Item::Last(bytes)) => {
                    partial.extend_from_slice(&bytes);
                    std::mem::take(&mut partial)
                }
                ws::Frame::Ping(bytes) => {
                    self.socket.send(ws::Message::Pong(bytes)).await.unwrap();
                    continue;
                }
                other => panic!("unexpected DevTools frame {other:?}"),
            };
            let reply: Value = serde_json::from_slice(&text).unwrap();
            match reply["method"].as_str() {
                Some("Runtime.exceptionThrown") => self.errors.push(reply["params"]["exceptionDetails"].to_string()),
                Some("Runtime.consoleAPICalled") if reply["params"]["type"] == "error" => {
                    self.errors.push(reply["params"]["args"].to_string())
                }
                _ => {}
            }
            if reply["id"] == id {
                assert!(reply["error"].is_null(), "{method}: {}", reply["error"]);
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `body`, the body of an async function, in the page; returns its value. The
    /// page's helper `until(f)` waits (in the page) until `f()` is truthy (an exception counts as
    /// not yet: the page may still be loading), and returns it.
    async fn eval(&mut self, body: &str) -> Value {
        let expression = format!(
            "(async () => {{
                const until = async (f, what) => {{
                    const end = Date.now() + {PATIENCE_MS};
                    for (;;) {{
                        let v = null;
                        try {{ v = f(); }} catch (e) {{ v = null; }}
                        if (v) return v;
                        if (Date.now() > end) throw new Error('timed out waiting for ' + (what || f));
                        await new Promise(r => setTimeout(r, 25));
                    }}
                }};
                const q = s => document.querySelector(s), all = s => document.querySelectorAll(s).length;
                {body}
            }})()"
        );
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "in the page: {}",
            result["exceptionDetails"]["exception"]["description"]
        );
        result["result"]["value"].clone()
    }

    async fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" })).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many of a canvas's pixels are painted (not transparent).
const PAINTED: &str =
    "const painted = id => { const c = q(id), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
     let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; };";

/// Runs `text` on the real clock with a live view on an ephemeral loopback port and a browser on
/// its dashboard; `browse` gets the browser and what ends the run (the run also ends when
/// `browse` returns); returns the run's summary.
async fn with_dashboard<F, Fut>(text: &str, browse: F) -> sensor_actors::Summary
where
    F: FnOnce(Browser, tokio::sync::oneshot::Sender<()>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_dashboard_and(text, None, browse).await
}

/// [`with_dashboard`] with the controls on when a token is given.
async fn with_dashboard_and<F, Fut>(text: &str, token: Option<&str>, browse: F) -> sensor_actors::Summary
where
    F: FnOnce(Browser, tokio::sync::oneshot::Sender<()>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let config = Collector::new().parse(text, "dashboard.toml").unwrap();
    let http = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    let live = LiveView::new(&config, &http).start();
    let collector = Collector::new();
    let server = match token {
        Some(token) => {
            LiveServer::bind_with_controls(http.address, live.clone(), collector.control(), token.to_string())
        }
        None => LiveServer::bind(http.address, live.clone()),
    }
    .unwrap();
    let page = format!("http://{}/", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = LiveView::attach(&live, collector).run(config, async {
        let _ = stopped.await;
    });
    let browsing = async move {
        let mut browser = Browser::launch().await;
        browser.call("Page.navigate", json!({ "url": page })).await;
        browse(browser, stop).await;
    };
    let (summary, ()) = futures::join!(run, browsing);
    server.stop().await;
    summary.unwrap()
}

#[actix_rt::test]
async fn the_dashboard_shows_the_run_and_follows_it() {
    let summary = with_dashboard(RUN, |mut browser, stop| async move {

        // The tree (root, both groups nested, ungrouped), both charts, both feeds.
        let first = browser
            .eval(&format!(
                "{PAINTED}
                 await until(() => all('#tree [data-group]') === 3, 'the tree');
                 await until(() => q('[data-group=\"line-a\"] [data-group=\"line-b\"]'), 'line-b nested in line-a');
                 await until(() => Number(q('#chart-duration').dataset.points) >= 2, 'the round chart');
                 await until(() => all('#events li[data-seq]') > 0, 'the event feed');
                 await until(() => all('#anomalies li:not(.empty)') > 0, 'the anomaly feed');
                 return {{ points: Number(q('#chart-duration').dataset.points),
                          outcomes: Number(q('#chart-outcomes').dataset.points),
                          painted: [painted('#chart-duration'), painted('#chart-outcomes')],
                          seq: Number(q('#events li[data-seq]').dataset.seq),
                          cells: all('[data-group=\"line-a\"] > .cells .cell'),
                          controls: q('#controls-panel').hidden && q('#sensor-controls').hidden,
                          status: q('#status').textContent }};"
            ))
            .await;
        assert_eq!(first["cells"], 5, "{first}");
        assert_eq!(first["status"], "running", "{first}");
        assert_eq!(first["controls"], true, "no controls without them: {first}");
        assert!(first["outcomes"].as_u64() >= Some(2), "{first}");
        for painted in first["painted"].as_array().unwrap() {
            assert!(painted.as_u64() > Some(500), "a chart is blank: {first}");
        }

        // They update: more rounds charted, newer events listed; the planned panic shows on
        // its sensor (restarted) and in the feed.
        let later = browser
            .eval(&format!(
                "await until(() => Number(q('#chart-duration').dataset.points) >= {} + 3, 'more rounds');
                 await until(() => [...document.querySelectorAll('#events li')].some(li =>
                     li.textContent.includes('restarted') && li.textContent.includes('temperature-07')), 'the restart in the feed');
                 await until(() => Number(q('#events li[data-seq]').dataset.seq) > {}, 'newer events');
                 return {{ points: Number(q('#chart-duration').dataset.points),
                          seq: Number(q('#events li[data-seq]').dataset.seq) }};",
                first["points"], first["seq"]
            ))
            .await;
        assert!(later["seq"].as_u64() > first["seq"].as_u64(), "{first} {later}");

        // A click on `ungrouped` pages through its 30 sensors; the restarted one is marked.
        let group = browser
            .eval(
                "q('[data-group=\"ungrouped\"] > .row').click();
                 await until(() => !q('#group-panel').hidden && all('#group-cells .cell') === 30, 'the group page');
                 await until(() => q('#group-cells [data-sensor=\"temperature-07\"]').classList.contains('restarted'), 'the restart mark');
                 return { title: q('#group-title').textContent, range: q('#group-range').textContent,
                          next: q('#group-next').disabled };",
            )
            .await;
        assert_eq!(group["title"], "ungrouped sensors", "{group}");
        assert_eq!(group["range"], "1–30 of 30", "{group}");
        assert_eq!(group["next"], true, "{group}");

        // A click on a sensor plots its values, and the plot grows with the rounds.
        let sensor = browser
            .eval(&format!(
                "{PAINTED}
                 q('#group-cells [data-sensor=\"temperature-03\"]').click();
                 await until(() => !q('#sensor-panel').hidden && Number(q('#chart-sensor').dataset.points) >= 1, 'the plot');
                 const before = Number(q('#chart-sensor').dataset.points);
                 await until(() => Number(q('#chart-sensor').dataset.points) > before + 1, 'the plot growing');
                 return {{ title: q('#sensor-title').textContent, painted: painted('#chart-sensor'),
                          selected: q('#group-cells [data-sensor=\"temperature-03\"]').classList.contains('selected') }};"
            ))
            .await;
        assert_eq!(sensor["title"], "sensor temperature-03", "{sensor}");
        assert_eq!(sensor["selected"], true, "{sensor}");
        assert!(sensor["painted"].as_u64() > Some(200), "{sensor}");

        let shot = browser.screenshot("dashboard.png").await;
        assert!(std::fs::metadata(&shot).unwrap().len() > 20_000, "{}", shot.display());

        // The run ends: the page says so.
        stop.send(()).unwrap();
        let end = browser
            .eval("await until(() => q('#status').textContent === 'finished', 'the end'); return q('#status').textContent;")
            .await;
        assert_eq!(end, "finished");
        assert!(browser.errors.is_empty(), "errors in the page: {:?}", browser.errors);
    })
    .await;
    assert!(summary.rounds > 5);
}

/// 100,000 sensors in one rotation: the tree stays a summary, the page stays small, a group is
/// paged 500 sensors at a time and a sensor is found by its id. The timings (click to render,
/// the longest task of the page while it follows the run) are printed, not asserted.
const LARGE: &str = r#"
[collection]
interval = "2s"
read_timeout = "1500ms"
rounds = 100000
seed = 5

[[groups]]
name = "bus"
max_restarts = 100

[[sensors]]
count = 99990
latency = ["1ms", "5ms"]
error_rate = 0.01
fatal_rate = 0.0001

[[sensors]]
name = "bus"
count = 10
group = "bus"
latency = ["1ms", "5ms"]
"#;

#[actix_rt::test]
async fn the_dashboard_stays_small_at_100000_sensors() {
    let summary = with_dashboard(LARGE, |mut browser, stop| async move {
        let seen = browser
            .eval(
                r#"window.longest = 0;
                 new PerformanceObserver(l => { for (const e of l.getEntries()) window.longest = Math.max(window.longest, e.duration); })
                     .observe({ type: 'longtask', buffered: true });
                 await until(() => Number(q('#chart-duration').dataset.points) >= 2, 'two rounds');
                 await until(() => q('[data-group="ungrouped"]') && q('[data-group="ungrouped"]').textContent.includes('99,990 sensors'), 'the tree');
                 const elements = document.getElementsByTagName('*').length;
                 let t = performance.now();
                 q('[data-group="ungrouped"] > .row').click();
                 await until(() => all('#group-cells .cell') === 500, 'the first page');
                 const page = performance.now() - t;
                 t = performance.now();
                 q('#group-next').click();
                 await until(() => q('#group-range').textContent === '501–1,000 of 99,990', 'the second page');
                 const next = performance.now() - t;
                 t = performance.now();
                 q('#find').value = 'temperature-54321';
                 q('#find').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
                 await until(() => q('#sensor-title').textContent === 'sensor temperature-54321' && Number(q('#chart-sensor').dataset.points) >= 1, 'the sensor');
                 const found = performance.now() - t;
                 const rounds = Number(q('#chart-duration').dataset.points);
                 await until(() => Number(q('#chart-duration').dataset.points) > rounds, 'one more round');
                 return { elements, page, next, found, longest: window.longest,
                          cells: document.querySelectorAll('.cell').length,
                          summarised: q('[data-group="ungrouped"]').textContent.includes('summarised') };"#,
            )
            .await;
        eprintln!("the dashboard at 100,000 sensors: {seen}");
        browser.screenshot("dashboard-100k.png").await;
        // The page holds the tree's summary, a page of 500 sensors (and the 10 of `bus`), not
        // 100,000 of anything.
        assert_eq!(seen["summarised"], true, "{seen}");
        assert_eq!(seen["cells"], 510, "{seen}");
        assert!(seen["elements"].as_u64() < Some(2_000), "{seen}");
        let _ = stop.send(());
        assert!(browser.errors.is_empty(), "errors in the page: {:?}", browser.errors);
    })
    .await;
    assert_eq!(summary.sensors.len(), 100_000);
}

/// With the controls on, the page shows them; with the token typed in, a click stops the
/// selected sensor (its square turns `stopped`), another restarts it, and sensors added from the
/// entry box appear in the tree; each is in the event feed, `requested by live view`. Without
/// the controls (the first test) the page has none.
#[actix_rt::test]
async fn the_dashboard_controls_a_sensor() {
    const TOKEN: &str = "dashboard-token-0123456789";
    let summary = with_dashboard_and(RUN, Some(TOKEN), |mut browser, stop| async move {
        let seen = browser
            .eval(&format!(
                r#"await until(() => !q('#controls-panel').hidden && !q('#sensor-controls').hidden, 'the controls');
                 q('#token').value = '{TOKEN}';
                 q('#token').dispatchEvent(new Event('change'));
                 await until(() => q('[data-group="ungrouped"] > .row'), 'the tree');
                 q('[data-group="ungrouped"] > .row').click();
                 await until(() => q('#group-cells [data-sensor="temperature-12"]'), 'the group page');
                 q('#group-cells [data-sensor="temperature-12"]').click();
                 await until(() => q('#sensor-title').textContent === 'sensor temperature-12', 'the sensor');
                 q('#sensor-controls [data-action="stop"]').click();
                 const stopped = await until(() => q('#sensor-control-result').textContent, 'the answer to stop');
                 await until(() => q('#group-cells [data-sensor="temperature-12"]').title.includes(': stopped,'), 'the stopped square');
                 q('#sensor-control-result').textContent = '';
                 q('#sensor-controls [data-action="restart"]').click();
                 const restarted = await until(() => q('#sensor-control-result').textContent, 'the answer to restart');
                 await until(() => q('#group-cells [data-sensor="temperature-12"]').title.includes(': running,'), 'the running square');
                 q('#add-entry').value = 'id = "boiler-7"\nlatency = ["2ms", "5ms"]';
                 q('#add-button').click();
                 const added = await until(() => q('#add-result').textContent, 'the answer to add');
                 await until(() => q('[data-group="ungrouped"]').textContent.includes('31 sensors'), 'the added sensor in the tree');
                 await until(() => [...document.querySelectorAll('#events li')].filter(li => li.textContent.includes('requested by live view')).length === 3, 'the feed');
                 return {{ stopped, restarted, added }};"#
            ))
            .await;
        assert_eq!(
            seen,
            json!({ "stopped": "stopped", "restarted": "restarted", "added": "added boiler-7" })
        );
        let _ = stop.send(());
        assert!(browser.errors.is_empty(), "errors in the page: {:?}", browser.errors);
    })
    .await;
    let boiler = summary.sensors.iter().find(|s| s.id == "boiler-7").unwrap();
    assert_eq!(boiler.state, "running");
}
