//! Real work in the sandbox (T2): the sample projects in `tests/workloads/` (one per kind of work
//! an agent does; see its README), each copied into a fresh workspace and run for real with
//! `corral run -- sh run.sh` as the unprivileged test user, under the shipped `default` profile.
//! Each test compares the project's whole output (and exit code) with what the project produces
//! outside any sandbox, and checks the files it wrote: the sandbox must be strict without getting
//! in the way of real work.
//!
//! Only one project adds anything to `default`, what a real user would: the API client is
//! given the proxy (`--network proxy --allow-host`, and a profile file allowing the test server's
//! loopback address, which the proxy otherwise refuses). The multi-service project's two
//! processes talk over the sandbox's own loopback with nothing added (`network.loopback = "open"`).
//!
//! Generated inputs (the 1000-row CSV, the 100 MiB log) are generated inside the sandbox by the
//! project's own scripts, never committed. Every run is bounded by [`LIMIT`].

// Helpers outside #[test] functions panic on a failed set-up, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use pretty_assertions::assert_eq;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Longest a workload may run before the test kills it and fails: the slowest (the 100 MiB log)
/// takes a few seconds; this leaves room for a loaded machine, not for a hang.
const LIMIT: Duration = Duration::from_secs(60);

fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(userns_available)
}

const NO_SANDBOX: &str = "cannot start a sandbox here (user namespaces unavailable?)";

/// Directory names never copied from the source tree (left behind by running a project by hand).
const GENERATED: &[&str] = &["__pycache__", ".pytest_cache", "node_modules", ".npm-cache"];

/// `tests/workloads/<name>` in the repository.
fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/workloads")
        .join(name)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            if !GENERATED.iter().any(|g| name == *g) {
                copy_tree(&src, &dst);
            }
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A fixture whose workspace is a fresh copy of the workload `name`.
fn project(name: &str) -> Fixture {
    let fx = Fixture::new();
    copy_tree(&source(name), &fx.ws);
    fx
}

/// What a workload needs on this machine beyond the sandbox, or None when all is there.
fn missing(needs: &[&str]) -> Option<String> {
    let absent: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|n| {
            let probe = match *n {
                "pytest" => "python3 -c 'import pytest'".to_string(),
                tool => format!("command -v {tool}"),
            };
            !Command::new("sh")
                .args(["-c", &probe])
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success()
        })
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "this workload needs {} (apt-get install python3 python3-pytest nodejs npm)",
            absent.join(", ")
        )
    })
}

/// Says why the test cannot run here (user namespaces, or a tool the project uses), if it cannot.
fn cannot_run(needs: &[&str]) -> Option<String> {
    if !ready() {
        return Some(NO_SANDBOX.to_string());
    }
    missing(needs)
}

/// Runs `cmd` to its end, at most [`LIMIT`] (then kills it and fails, showing what it printed).
fn bounded(mut cmd: Command, what: &str) -> Output {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut child = Reaped(child);
    let status = child.wait_for_exit(LIMIT);
    // Killed here if still running; its streams end with it.
    drop(child);
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let Some(status) = status else {
        panic!(
            "{what}: still running after {LIMIT:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )
    };
    let o = Output {
        status,
        stdout,
        stderr,
    };
    eprintln!("{what}: {:.2?}", start.elapsed());
    o
}

/// `corral run --yes [extra] -- sh run.sh` in the workload's workspace, bounded.
fn run_workload(fx: &Fixture, name: &str, extra: &[&str]) -> Output {
    fx.chown();
    let mut c = fx.corral();
    c.args(["run", "--yes"]).args(extra).args(["--", "sh", "run.sh"]);
    bounded(c, &format!("workload {name}"))
}

/// Asserts a clean exit and exactly `want` on stdout.
#[track_caller]
fn assert_output(o: &Output, want: &str) {
    assert_code(o, 0);
    assert_eq!(stdout(o), want, "stderr:\n{}", stderr(o));
}

fn read(fx: &Fixture, rel: &str) -> String {
    std::fs::read_to_string(fx.ws.join(rel)).unwrap()
}

// ------------------------------------------------------------------------------------------------

#[test]
fn hello_world() {
    if let Some(why) = cannot_run(&["python3", "node"]) {
        return skip(&why);
    }
    let fx = project("hello");
    let o = run_workload(&fx, "hello", &[]);
    assert_output(
        &o,
        "Hello, world! (sh)\nHello, world! (python)\nHello, world! (node)\nHello, world! (python) from a file\n",
    );
    assert_eq!(read(&fx, "greeting.txt"), "Hello, world! (python) from a file\n");
}

#[test]
fn a_multi_file_python_project_passes_its_pytest_suite() {
    if let Some(why) = cannot_run(&["python3", "pytest"]) {
        return skip(&why);
    }
    let fx = project("python-pytest");
    let o = run_workload(&fx, "python-pytest", &[]);
    assert_output(
        &o,
        "\
PASSED  tests.test_cli::test_cli_prints_the_report
PASSED  tests.test_stats::test_frequencies_can_keep_stop_words
PASSED  tests.test_stats::test_frequencies_skip_stop_words
PASSED  tests.test_stats::test_report
PASSED  tests.test_stats::test_report_on_empty_text
PASSED  tests.test_stats::test_top_breaks_ties_alphabetically
PASSED  tests.test_words::test_sentences
PASSED  tests.test_words::test_sentences_collapse_whitespace
PASSED  tests.test_words::test_word_edges[apostrophe]
PASSED  tests.test_words::test_word_edges[dashes]
PASSED  tests.test_words::test_word_edges[digits]
PASSED  tests.test_words::test_word_edges[empty]
PASSED  tests.test_words::test_word_edges[hyphen]
PASSED  tests.test_words::test_words_are_lower_cased_and_possessives_dropped
14 passed, 0 failed, 0 error, 0 skipped
words: 48
distinct: 29
sentences: 3
words per sentence: 16.0
  4 project
  3 sandbox
  2 agent
  2 nothing
  1 else
",
    );
    // pytest wrote its report, its cache and the bytecode into the project, as it does outside.
    assert!(read(&fx, "build/junit.xml").contains("tests=\"14\""));
    assert!(fx.ws.join(".pytest_cache").is_dir());
    assert!(fx.ws.join("textstats/__pycache__").is_dir());
}

#[test]
fn csv_processing_of_a_generated_1000_row_file() {
    if let Some(why) = cannot_run(&["python3"]) {
        return skip(&why);
    }
    let fx = project("csv-report");
    let o = run_workload(&fx, "csv-report", &[]);
    assert_output(
        &o,
        r#"wrote 1000 rows to data/sales.csv
rows: 1000
units: 10773
revenue: 54343.23
customers: 5
by region:
  East    253 orders   14146.07
  West    246 orders   14050.30
  North   250 orders   13263.76
  South   251 orders   12883.10
by quarter:
  2024-Q1   14106.28
  2024-Q2   11769.42
  2024-Q3   14410.73
  2024-Q4   14056.80
largest orders:
  SO-10095   240.00 Zed
  SO-10177   240.00 The "Best" Shop
  SO-10328   240.00 O'Brien & Sons
--- out/by_product.csv
product,orders,units,revenue,share_pct
doohickey,202,2260,2162.55,4.0
gadget,190,2026,23607.60,43.4
gizmo,192,2043,14377.62,26.5
sprocket,207,2211,8763.86,16.1
widget,209,2233,5431.60,10.0
"#,
    );
    let csv = read(&fx, "data/sales.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1001, "a header and 1000 rows");
    assert_eq!(
        lines[0],
        "order_id,date,region,customer,product,unit_price,quantity,discount_pct"
    );
    assert_eq!(
        lines[2],
        "SO-10001,2024-08-17,East,\"Smith, J.\",sprocket,4.10,15,0"
    );
}

#[test]
fn a_template_doc_generator_renders_its_pages() {
    if let Some(why) = cannot_run(&["python3"]) {
        return skip(&why);
    }
    let fx = project("docgen");
    let o = run_workload(&fx, "docgen", &[]);
    assert_output(
        &o,
        "=== docs/geom.md
# `geom`

Small geometry helpers: shapes and unit conversions.
=== docs/geom.shapes.md
# `geom.shapes`

Plane shapes and their measures.

Every shape answers `area()` and `perimeter()` in the units its sides were given in.

## Classes

### class `Circle(radius)`

A circle of a given radius.

- `area()`: The area, pi r squared.
- `perimeter()`: The circumference, 2 pi r.

### class `Rectangle(width, height)`

An axis-aligned rectangle.

A square is a rectangle whose sides are equal; see `square`.

- `area()`: Width times height.
- `perimeter()`: Twice the sum of the sides.

## Functions

### `square(side)`

A Rectangle with both sides equal to `side`.

### `total_area(shapes, *, skip_empty=True)`

The sum of the areas of `shapes`.

Shapes whose area is zero are skipped when `skip_empty` is true.
=== docs/geom.units.md
# `geom.units`

Length units and conversions between them.

## Functions

### `convert(value, from_unit, to_unit='m')`

`value` in `from_unit`, expressed in `to_unit`.

Raises KeyError for a unit not in FACTORS.

### `units()`

The known unit names, sorted.
=== docs/index.md
# API reference

- [`geom`](geom.md): Small geometry helpers: shapes and unit conversions. (0 documented names)
- [`geom.shapes`](geom.shapes.md): Plane shapes and their measures. (8 documented names)
- [`geom.units`](geom.units.md): Length units and conversions between them. (2 documented names)
",
    );
    // The sources were parsed, not imported: no bytecode next to them.
    assert!(!fx.ws.join("src/geom/__pycache__").exists());
}

#[test]
fn a_static_site_generator_builds_a_site_with_working_links() {
    if let Some(why) = cannot_run(&["node"]) {
        return skip(&why);
    }
    let fx = project("static-site");
    let o = run_workload(&fx, "static-site", &[]);
    assert_output(
        &o,
        r#"wrote about.html 425
wrote feed.xml 395
wrote index.html 770
wrote posts/first-light.html 758
wrote posts/namespaces-all-the-way-down.html 733
wrote style.css 156
wrote tags/intro.html 521
wrote tags/linux.html 553
wrote tags/sandbox.html 739
checked 39 links in 7 pages: 0 broken
=== public/index.html
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Home | Field notes</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<header><a href="index.html">Field notes</a></header>
<main>
<h1>Field notes</h1>
<ul class="posts">
<li>2024-04-12 <a href="posts/namespaces-all-the-way-down.html">Namespaces all the way down</a> <span class="tags"><a href="tags/sandbox.html">#sandbox</a> <a href="tags/linux.html">#linux</a></span></li>
<li>2024-03-01 <a href="posts/first-light.html">First light</a> <span class="tags"><a href="tags/intro.html">#intro</a> <a href="tags/sandbox.html">#sandbox</a></span></li>
</ul>
<p><a href="about.html">About</a> · <a href="feed.xml">Feed</a></p>
</main>
<footer>&copy; 2024 A. Writer</footer>
</body>
</html>
"#,
    );
    assert_eq!(
        read(&fx, "public/posts/namespaces-all-the-way-down.html"),
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Namespaces all the way down | Field notes</title>
<link rel="stylesheet" href="../style.css">
</head>
<body>
<header><a href="../index.html">Field notes</a></header>
<main>
<article>
<h1>Namespaces all the way down</h1>
<p>User, mount, pid, ipc, uts, cgroup and network: <strong>seven</strong> namespaces.</p>
<pre><code>unshare --user --map-root-user sh</code></pre>
<p>Less than &lt;half&gt; of the story; the rest is Landlock &amp; seccomp.</p>
<p class="meta">2024-04-12 <span class="tags"><a href="../tags/sandbox.html">#sandbox</a> <a href="../tags/linux.html">#linux</a></span></p>
</article>
</main>
<footer>&copy; 2024 A. Writer</footer>
</body>
</html>
"#
    );
}

#[test]
fn a_log_analyser_over_a_generated_100_mib_log() {
    if let Some(why) = cannot_run(&["python3"]) {
        return skip(&why);
    }
    let fx = project("log-analyser");
    let o = run_workload(&fx, "log-analyser", &[]);
    assert_output(
        &o,
        "generated logs/access.log: 899098 lines, 104857661 bytes
requests: 899098
bytes sent: 8691436326
clients: 3598
status classes: 2xx 694358, 3xx 62828, 4xx 94256, 5xx 47656
top statuses: 200 658115, 404 49872, 304 32069, 204 18889
top paths:
   149360 /api/items
    77982 /search
    77762 /login
    77317 /
    76875 /health
busiest hour: 14:00 (61200 requests, 24 hours seen)
latency ms: p50 214, p95 1527, p99 1821
most server errors: /api/items (7907)
cross-check: 899098 lines, 47656 server errors
",
    );
    let size = std::fs::metadata(fx.ws.join("logs/access.log")).unwrap().len();
    assert!(size >= 100 * 1024 * 1024, "{size} bytes");
}

/// A JSON API on the host's loopback for the API client: items in two pages, reports stored and
/// read back. Records every request as (request line, User-Agent, body).
struct Api {
    port: u16,
    got: Arc<Mutex<Vec<(String, String, String)>>>,
}

/// The API's address: loopback, but not `127.0.0.1`, which the sandbox's `NO_PROXY` names (a
/// client would then dial the sandbox's own loopback directly, where Landlock refuses it). To the
/// client this is a remote host like any other: it goes through the proxy.
const API_ADDR: &str = "127.0.0.2";

impl Api {
    fn start() -> Api {
        let l = TcpListener::bind((API_ADDR, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            let reports: Arc<Mutex<Vec<String>>> = Arc::default();
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let (g, reports) = (g.clone(), reports.clone());
                std::thread::spawn(move || Api::serve(s, &g, &reports));
            }
        });
        Api { port, got }
    }

    fn serve(
        mut s: std::net::TcpStream,
        got: &Mutex<Vec<(String, String, String)>>,
        reports: &Mutex<Vec<String>>,
    ) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let len: usize = header("content-length").parse().unwrap_or(0);
        while buf.len() < head_end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
        let line = head.lines().next().unwrap_or("").to_string();
        let target = line.split(' ').nth(1).unwrap_or("").to_string();
        let items: Vec<String> = (1..=7)
            .map(|i| {
                format!(
                    r#"{{"sku": "SKU-{i}", "stock": {}, "price_cents": {}}}"#,
                    i * 2 - 1,
                    250 * i
                )
            })
            .collect();
        let (status, reply) = match (line.split(' ').next().unwrap_or(""), target.as_str()) {
            ("GET", "/v1/items?page=1") => (
                "200 OK",
                format!(r#"{{"items": [{}], "next": 2}}"#, items[..4].join(", ")),
            ),
            ("GET", "/v1/items?page=2") => (
                "200 OK",
                format!(r#"{{"items": [{}], "next": null}}"#, items[4..].join(", ")),
            ),
            ("POST", "/v1/reports") => {
                let mut r = reports.lock().unwrap();
                r.push(body.clone());
                ("201 Created", format!(r#"{{"id": "r-{}"}}"#, r.len()))
            }
            ("GET", t) if t.starts_with("/v1/reports/r-") => {
                let r = reports.lock().unwrap();
                match t["/v1/reports/r-".len()..].parse::<usize>() {
                    Ok(n) if (1..=r.len()).contains(&n) => ("200 OK", r[n - 1].clone()),
                    _ => ("404 Not Found", r#"{"error": "no such report"}"#.to_string()),
                }
            }
            _ => ("404 Not Found", r#"{"error": "no such report"}"#.to_string()),
        };
        let _ = s.write_all(
            format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .as_bytes(),
        );
        got.lock().unwrap().push((line, header("user-agent"), body));
    }
}

#[test]
fn an_api_client_talks_through_the_proxy_to_a_local_server() {
    if let Some(why) = cannot_run(&["python3"]) {
        return skip(&why);
    }
    let api = Api::start();
    let fx = project("api-client");
    fx.ws_file(
        "api.json",
        &format!("{{\"base_url\": \"http://{API_ADDR}:{}\"}}\n", api.port),
    );
    // The one thing no flag says: the proxy may dial this loopback address (never by default).
    let profile = fx.root.join("api-client.toml");
    std::fs::write(
        &profile,
        format!("extends = \"default\"\n\n[network]\nallow_cidrs = [\"{API_ADDR}/32\"]\n"),
    )
    .unwrap();
    let host = format!("{API_ADDR}:{}", api.port);
    let o = run_workload(
        &fx,
        "api-client",
        &[
            "--network",
            "proxy",
            "--allow-host",
            &host,
            "--profile",
            profile.to_str().unwrap(),
        ],
    );
    assert_output(
        &o,
        "proxy: http://127.0.0.1:3128
page 1: 4 items
page 2: 3 items
items: 7, stock value: 630.00, reorder: SKU-1, SKU-2
report created (201): r-1
report read back: identical
unknown report: 404
",
    );
    // Every request arrived, in order, in origin form, from the client (the proxy adds nothing).
    let got = api.got.lock().unwrap().clone();
    let report = r#"{"items": 7, "reorder": ["SKU-1", "SKU-2"], "stock_value_cents": 63000}"#;
    let want: Vec<(String, String, String)> = [
        ("GET /v1/items?page=1 HTTP/1.1", ""),
        ("GET /v1/items?page=2 HTTP/1.1", ""),
        ("POST /v1/reports HTTP/1.1", report),
        ("GET /v1/reports/r-1 HTTP/1.1", ""),
        ("GET /v1/reports/nope HTTP/1.1", ""),
    ]
    .iter()
    .map(|(l, b)| (l.to_string(), "inventory-sync/1.0".to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    assert!(
        stderr(&o).contains("corral: network: 5 allowed to 1 host, 0 denied"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_npm_package_is_built_packed_and_installed_offline() {
    if let Some(why) = cannot_run(&["node", "npm"]) {
        return skip(&why);
    }
    let fx = project("npm-package");
    let o = run_workload(&fx, "npm-package", &[]);
    assert_output(
        &o,
        "slugkit: built lib/index.js from 2 modules, 29 transliterations
slugkit: 7 checks passed
packed slugkit-1.2.0.tgz
tarball:
  package/lib/index.js
  package/package.json
installed slugkit 1.2.0
1. getting-started
2. configuration-and
3. ueberblick-the-layers
4. getting-started-2
5. resume-of-guarantees
docs-index: 5 entries checked
",
    );
    // Installed from the tarball: the built code, not the sources.
    let installed = fx.ws.join("app/node_modules/slugkit");
    assert!(installed.join("lib/index.js").is_file());
    assert!(!installed.join("src").exists());
    assert!(read(&fx, "app/package-lock.json").contains("file:../dist/slugkit-1.2.0.tgz"));
}

#[test]
fn a_multi_service_project_talks_over_the_sandboxs_own_loopback() {
    if let Some(why) = cannot_run(&["python3", "node"]) {
        return skip(&why);
    }
    let fx = project("multi-service");
    fx.chown();
    // Nothing added: the sandbox's own loopback is open to its own processes (network.loopback).
    let o = run_workload(&fx, "multi-service", &[]);
    assert_output(
        &o,
        "catalog: 4 products, 3 in stock
order 1: 2 x Green tea = 9.00
order 2: 1 x Stoneware mug = 12.00
refused (409): TEA-02: 3 in stock, 5 wanted
refused (409): POT-01: 0 in stock, 1 wanted
order 3: 3 x Black tea = 11.70
total: 32.70
black tea left: 0
catalog took 3 orders
catalog exited with 0
catalog log:
  GET /products 200
  POST /orders 201
  POST /orders 201
  POST /orders 409
  POST /orders 409
  POST /orders 201
  GET /products/TEA-02 200
  POST /shutdown 200
",
    );
}
