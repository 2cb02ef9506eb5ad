//! Health and metrics against the real server: `/healthz` and `/readyz` on every role, readiness failing while
//! the database file is gone and back once it returns, `/metrics` absent unless configured and refused to
//! addresses not allowed, and a scrape after real traffic and a verified transfer: requests by route template
//! (never a raw id), tasks by status, bytes and files moved, in valid Prometheus text, also while traffic runs.

use ferry_tests::TestServer;
use ferry_tests::data::Door;
use ferry_tests::endpoint::{api, gateway, mapped};
use ferry_tests::ferry_server::Role;
use serde_json::{Value, json};

async fn get(s: &TestServer, path: &str) -> (u16, String) {
    let r = s
        .http
        .get(format!("{}{path}", s.url))
        .send()
        .await
        .expect("request sent");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn health_and_readiness_answer_and_readiness_fails_while_the_database_is_gone() {
    let hub = TestServer::start_with(|c| c.role = Role::Hub).await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&hub, path).await, (200, "ok".into()), "hub {path}");
    }
    hub.running.shutdown().await;

    let s = TestServer::start().await;
    assert_eq!(get(&s, "/healthz").await, (200, "ok".into()));
    assert_eq!(get(&s, "/readyz").await, (200, "ok".into()));
    assert_eq!(
        get(&s, "/metrics").await.0,
        404,
        "metrics are off by default"
    );

    // The database file goes away (a folder in its place, so that nothing can create it again either): the
    // pooled connections would still answer from the open file, but readiness opens it afresh.
    let db = s.data_dir().join("ferry.db");
    let away = s.data_dir().join("ferry.db.away");
    std::fs::rename(&db, &away).unwrap();
    std::fs::create_dir(&db).unwrap();
    let (status, body) = get(&s, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["failed"], "database", "{doc}");
    let dir = s.data_dir().display().to_string();
    assert!(
        !body.contains(&dir) && !body.contains("ferry.db"),
        "no paths: {body}"
    );
    assert_eq!(
        get(&s, "/healthz").await,
        (200, "ok".into()),
        "alive all the same"
    );

    std::fs::remove_dir(&db).unwrap();
    std::fs::rename(&away, &db).unwrap();
    assert_eq!(get(&s, "/readyz").await, (200, "ok".into()));
    s.running.shutdown().await;
}

#[tokio::test]
async fn metrics_are_refused_to_addresses_not_allowed() {
    let s = TestServer::start_with(|c| {
        c.metrics.enabled = true;
        c.metrics.allow = vec!["192.0.2.7".parse().unwrap()];
    })
    .await;
    let (status, body) = get(&s, "/metrics").await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("ferry_"), "{body}");
    s.running.shutdown().await;
}

/// Checks one line of Prometheus's text format: `# HELP`/`# TYPE` comments, or `name{label="v",…} value`.
fn check_line(line: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{why}: {line:?}"));
    if let Some(c) = line.strip_prefix("# ") {
        let mut parts = c.splitn(3, ' ');
        let (kind, name) = (parts.next(), parts.next());
        return match (kind, name.is_some_and(valid_name), parts.next()) {
            (Some("HELP"), true, Some(_)) => Ok(()),
            (
                Some("TYPE"),
                true,
                Some("counter" | "gauge" | "histogram" | "summary" | "untyped"),
            ) => Ok(()),
            _ => bad("a comment that is neither HELP nor TYPE"),
        };
    }
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    if !valid_name(&line[..name_end]) {
        return bad("a bad metric name");
    }
    let mut rest = &line[name_end..];
    if let Some(labels) = rest.strip_prefix('{') {
        let mut l = labels;
        loop {
            if let Some(after) = l.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = l.find('=').ok_or("no '=' in a label")?;
            if !valid_name(&l[..eq]) || l[..eq].contains(':') {
                return bad("a bad label name");
            }
            let v = l[eq + 1..]
                .strip_prefix('"')
                .ok_or("an unquoted label value")?;
            let mut chars = v.char_indices();
            let close = loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        chars.next();
                    }
                    Some((i, '"')) => break i,
                    Some(_) => {}
                    None => return bad("an unterminated label value"),
                }
            };
            l = &v[close + 1..];
            l = l.strip_prefix(',').unwrap_or(l);
        }
    }
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or("no space before the value")?
        .split(' ');
    let value = fields.next().unwrap_or("");
    let number = matches!(value, "+Inf" | "-Inf" | "NaN") || value.parse::<f64>().is_ok();
    let timestamp_ok = fields.next().is_none_or(|t| t.parse::<i64>().is_ok());
    if !number || !timestamp_ok || fields.next().is_some() {
        return bad("a bad value");
    }
    Ok(())
}

fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Every line parses; returns the samples as (name with labels, value).
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        check_line(line).unwrap();
        if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap();
            samples.push((series.to_string(), value.parse().unwrap_or(f64::NAN)));
        }
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no {series} in the scrape"))
        .1
}

#[test]
fn the_line_check_refuses_what_prometheus_would() {
    for good in [
        "# HELP ferry_x Some help",
        "# TYPE ferry_x counter",
        "ferry_x 1",
        "ferry_x{a=\"b\",c=\"d \\\"q\\\"\"} 2.5",
        "ferry_h_bucket{le=\"+Inf\"} 3",
        "ferry_x +Inf",
    ] {
        check_line(good).unwrap();
    }
    for bad in [
        "ferry x 1",
        "ferry_x{a=b} 1",
        "ferry_x{a=\"b} 1",
        "ferry_x",
        "ferry_x one",
        "# TYPE ferry_x thing",
        "1ferry 1",
    ] {
        assert!(check_line(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn a_scrape_counts_requests_by_route_tasks_by_status_and_bytes_moved() {
    let s = TestServer::start_with(|c| c.metrics.enabled = true).await;
    let first = get(&s, "/metrics").await;
    assert_eq!(first.0, 200, "{}", first.1);
    let before = parse(&first.1);
    assert_eq!(value(&before, "ferry_task_lease_losses_total"), 0.0);

    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    let coll = mapped(&admin, g, json!({})).await;
    let d = Door::new(&s, &admin_app, coll).await;
    let content = ferry_tests::random(300_000);
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/f.bin"), &content).unwrap();
    let (task, _) = d
        .transfer_task(&[("/src/f.bin", "/dst/f.bin", false)])
        .await;
    assert_eq!(task["status"], "SUCCEEDED", "{task}");
    assert_eq!(
        std::fs::read(dir.path().join("dst/f.bin")).unwrap(),
        content
    );
    let task_id = task["task_id"].as_str().unwrap().to_string();
    assert_eq!(get(&s, "/no/such/place").await.0, 404);

    let (status, text) = get(&s, "/metrics").await;
    assert_eq!(status, 200);
    let after = parse(&text);
    assert!(value(&after, "ferry_tasks{status=\"SUCCEEDED\"}") >= 1.0);
    for st in ["ACTIVE", "INACTIVE", "FAILED"] {
        value(&after, &format!("ferry_tasks{{status=\"{st}\"}}"));
    }
    value(&after, "ferry_tasks_queued");
    assert!(value(&after, "ferry_transfer_bytes_total") >= content.len() as f64);
    assert!(value(&after, "ferry_transfer_files_total") >= 1.0);
    value(&after, "ferry_task_faults_total");
    // The task's status was polled by its route's template; no id is a label anywhere.
    let polled = after
        .iter()
        .find(|(series, _)| {
            series.starts_with("ferry_http_requests_total{")
                && series.contains("method=\"GET\"")
                && series.contains("route=\"/v0.10/task/{")
                && series.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no task route in {text}"));
    assert!(polled.1 >= 1.0);
    assert!(
        after.iter().any(
            |(series, n)| series.starts_with("ferry_http_requests_total{")
                && series.contains("route=\"unmatched\"")
                && series.contains("status=\"404\"")
                && *n >= 1.0
        ),
        "{text}"
    );
    assert!(
        after
            .iter()
            .any(|(series, _)| series.starts_with("ferry_http_request_duration_seconds_bucket{")),
        "{text}"
    );
    for id in [task_id, coll.to_string(), g.to_string()] {
        assert!(!text.contains(&id), "{id} is in the scrape");
    }

    // Scrapes while requests run: every one answers, whole and valid.
    let mut work = Vec::new();
    for i in 0..16 {
        let (http, url) = (s.http.clone(), s.url.clone());
        let path = if i % 2 == 0 { "/metrics" } else { "/readyz" };
        work.push(tokio::spawn(async move {
            let r = http.get(format!("{url}{path}")).send().await.unwrap();
            (path, r.status().as_u16(), r.text().await.unwrap())
        }));
    }
    let ls = d.ls("/src").await;
    assert_eq!(ls.status, 200, "{}", ls.text);
    for w in work {
        let (path, status, body) = w.await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        if path == "/metrics" {
            let samples = parse(&body);
            value(&samples, "ferry_transfer_bytes_total");
        }
    }
    s.running.shutdown().await;
}
