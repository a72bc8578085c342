//! The console in a real browser (headless Chromium through chromedriver) against the real
//! `vivarium serve`: the user guide's walk-through by clicking, live logs, escaping of
//! hostile names and log lines, CSRF refusals, and a member's refusal page. Each test saves
//! screenshots of the pages it visits under `target/console-screenshots/`. Without a browser
//! they are reported as ignored (the build script decides, see `build.rs`).

use serde_json::{Value, json};

use crate::common::api::Api;
use crate::common::browser::with_browser;
use crate::common::client::{Creds, ROOT_EMAIL, ROOT_PASSWORD};
use crate::common::files::{data_dir, uppercase_distinct, write_named};
use crate::common::forms::service_action;
use crate::common::process::Server;
use crate::common::zips::{zip_dir, zip_main};
use crate::http_walkthrough::{check_example_result, seed_records};

const ORG: &str = "default";
const ACCOUNT: &str = "action_script@gmail.com";

fn base(server: &Server) -> String {
    format!("http://{}", server.addr)
}

/// The user guide's walk-through, every step clicked: sign in, a service account (its token
/// shown once) and a role with GET on every action, the example ZIP uploaded, a test run on
/// the Kubernetes records showing the upper-cased records and the summary, the history and
/// the run.
#[test]
#[cfg_attr(
    not(vivarium_browser),
    ignore = "needs chromium and chromium-driver: run .ci/browser (as root) first"
)]
fn the_user_guide_walk_through_by_clicking() {
    let data = data_dir();
    let server = Server::start(data.path());
    let base = base(&server);
    let zip = zip_dir(&uppercase_distinct(), None);
    let (_zip_dir, zip_path) = write_named("uppercase_distinct.zip", &zip);
    let records = seed_records();
    with_browser(|browser| async move {
        browser.sign_in(&base, ROOT_EMAIL, ROOT_PASSWORD).await;
        browser.screenshot("actions-empty").await;

        browser
            .goto(&format!("{base}/console/orgs/{ORG}/identities"))
            .await;
        browser.type_into("#sa-email", ACCOUNT).await;
        browser.type_into("#sa-first", "Action").await;
        browser.click("#new-account button[type=submit]").await;
        let token = browser
            .until("the new token", "const t = document.getElementById('token-value'); return t && t.textContent ? t.textContent : null")
            .await;
        assert!(token.as_str().is_some_and(|t| t.len() >= 16), "{token}");
        browser.screenshot("identities-token").await;
        browser.click("[data-done]").await;
        browser.element("#accounts").await;
        let page = browser.page_text().await;
        assert!(page.contains(ACCOUNT), "{page}");
        assert!(
            !page.contains(token.as_str().unwrap_or_default()),
            "the token is never shown again"
        );

        browser.type_into("#role-name", "action_runner").await;
        browser.click("#new-role button[type=submit]").await;
        browser
            .element("[data-role=action_runner] .grant-form")
            .await;
        browser
            .click("[data-role=action_runner] .grant-form button[type=submit]")
            .await;
        browser
            .until(
                "the grant",
                "return document.body.innerText.includes('GET on action_scripts/_all') || null",
            )
            .await;
        browser
            .type_into(
                "[data-role=action_runner] .member-form input[name=email]",
                ACCOUNT,
            )
            .await;
        browser
            .click("[data-role=action_runner] .member-form button[type=submit]")
            .await;
        browser
            .until("the member", &format!("return [...document.querySelectorAll('[data-role=action_runner] li')].some(li => li.textContent.includes('{ACCOUNT}')) || null"))
            .await;
        browser.screenshot("identities").await;

        browser
            .goto(&format!("{base}/console/orgs/{ORG}/actions"))
            .await;
        browser.click("#new-action").await;
        browser.type_into("#name", "uppercase_distinct").await;
        browser
            .type_into(
                "#description",
                "Upper-cases the records and counts distinct pods",
            )
            .await;
        browser
            .element("#file")
            .await
            .send_keys(&zip_path.display().to_string())
            .await
            .expect("choosing the ZIP");
        browser.screenshot("action-form").await;
        browser.click("#save-action").await;
        browser.element("#test-run").await;

        browser
            .run(
                "document.getElementById('records').value = arguments[0]; return null",
                vec![Value::String(
                    serde_json::to_string_pretty(&records).unwrap_or_default(),
                )],
            )
            .await;
        browser.click("#run-test").await;
        let outcome = browser.until("the test run's outcome", "const o = document.getElementById('test-outcome'); return o ? o.textContent : null").await;
        assert_eq!(outcome, json!("ok"), "{}", browser.page_text().await);
        let result = browser.text("#test-result").await;
        let result: Value =
            serde_json::from_str(&result).unwrap_or_else(|e| panic!("{e}: {result}"));
        check_example_result(&result, &records);
        let logs = browser.text("#test-logs").await;
        assert!(
            logs.contains("Distinct pod names: 3, docker IDs: 3"),
            "{logs}"
        );
        browser.screenshot("action-test-run").await;

        browser.run("location.reload(); return null", vec![]).await;
        browser.click("#runs tbody tr a").await;
        assert_eq!(browser.text("#run-outcome").await, "ok");
        let logs = browser.text("#run-logs").await;
        assert!(logs.contains("Starting transformation"), "{logs}");
        browser.screenshot("run").await;

        browser
            .goto(&format!("{base}/console/orgs/{ORG}/actions"))
            .await;
        let list = browser.text("#actions").await;
        assert!(
            list.contains("uppercase_distinct") && list.contains("service"),
            "{list}"
        );
        browser.screenshot("actions").await;
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/dashboard"))
            .await;
        let charts = browser
            .run(
                "return document.querySelectorAll('.chart img').length",
                vec![],
            )
            .await;
        assert_eq!(charts, json!(6), "{}", browser.page_text().await);
        browser.screenshot("dashboard").await;
        browser
    });
}

/// An action that logs a line every 200 ms.
const SLOW_LOGGER: &str = "import time\n\ndef main(data, logger):\n    for i in range(10):\n        logger.info(f'tick {i}')\n        time.sleep(0.2)\n    return data\n";

/// A test run's lines appear while it runs, before its result; a run started by another
/// trigger is watched from the history the same way.
#[test]
#[cfg_attr(
    not(vivarium_browser),
    ignore = "needs chromium and chromium-driver: run .ci/browser (as root) first"
)]
fn live_logs_stream_into_the_page_while_the_run_goes_on() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    server.create_runner(ORG, &root, ACCOUNT);
    let id = server.create_action(
        ORG,
        &root,
        &service_action("ticker", &zip_main(SLOW_LOGGER), ACCOUNT),
    );
    let base = base(&server);
    let alert_url = format!("{base}/api/{ORG}/actions/{id}/alert");
    with_browser(|browser| async move {
        browser.sign_in(&base, ROOT_EMAIL, ROOT_PASSWORD).await;
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/actions/{id}"))
            .await;
        browser
            .run(
                "document.getElementById('records').value = '[{\"n\": 1}]'; return null",
                vec![],
            )
            .await;
        browser.click("#run-test").await;
        let early = browser
            .until("a line before the end", "const lines = document.querySelectorAll('#test-logs li').length; const done = document.getElementById('test-outcome'); return lines > 0 ? {lines, done: !!done} : null")
            .await;
        assert_eq!(
            early["done"],
            json!(false),
            "the first line came before the result: {early}"
        );
        browser.screenshot("live-test-run").await;
        let outcome = browser.until("the result", "const o = document.getElementById('test-outcome'); return o ? o.textContent : null").await;
        assert_eq!(outcome, json!("ok"));
        let lines = browser
            .run(
                "return document.querySelectorAll('#test-logs li').length",
                vec![],
            )
            .await;
        assert_eq!(lines, json!(10));

        let alert = std::thread::spawn(move || {
            ureq::post(&alert_url)
                .header("Authorization", &Creds::root().header())
                .header("Content-Type", "application/json")
                .send(json!({"inputs": {"n": 2}}).to_string())
                .map(|r| r.status().as_u16())
        });
        let action_page = format!("{base}/console/orgs/{ORG}/actions/{id}");
        let mut watched = false;
        for _ in 0..100 {
            browser.goto(&action_page).await;
            if browser
                .client
                .find(fantoccini::Locator::Css("#in-flight a"))
                .await
                .is_ok()
            {
                watched = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(watched, "the alert's run was never listed in flight");
        browser.click("#in-flight a").await;
        let early = browser
            .until("a watched line", "const lines = document.querySelectorAll('#live-logs li').length; return lines > 0 ? {lines, running: !!document.getElementById('live-status')} : null")
            .await;
        assert_eq!(early["running"], json!(true), "{early}");
        browser.screenshot("live-run").await;
        let outcome = browser
            .until(
                "the recorded run",
                "const o = document.getElementById('run-outcome'); return o ? o.textContent : null",
            )
            .await;
        assert_eq!(outcome, json!("ok"));
        assert_eq!(alert.join().ok().and_then(Result::ok), Some(200));
        browser
    });
}

/// An action name and a log line holding markup are shown as text; nothing runs.
#[test]
#[cfg_attr(
    not(vivarium_browser),
    ignore = "needs chromium and chromium-driver: run .ci/browser (as root) first"
)]
fn names_and_log_lines_holding_markup_render_as_text() {
    let data = data_dir();
    let server = Server::start(data.path());
    let root = Creds::root();
    server.create_runner(ORG, &root, ACCOUNT);
    let hostile = "<script>window.pwned=1<";
    let source = "def main(data, logger):\n    logger.info('<script>window.pwned=2</script><img src=x onerror=\"window.pwned=3\">')\n    return data\n";
    let id = server.create_action(
        ORG,
        &root,
        &service_action(hostile, &zip_main(source), ACCOUNT),
    );
    server
        .test_run(ORG, &root, &id, &json!([{"n": 1}]))
        .ok_json();
    let base = base(&server);
    with_browser(|browser| async move {
        browser.sign_in(&base, ROOT_EMAIL, ROOT_PASSWORD).await;
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/actions"))
            .await;
        assert_eq!(browser.text(".action-name").await, hostile);
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/actions/{id}"))
            .await;
        assert_eq!(browser.text("#action-title").await, hostile);
        browser.click("#runs tbody tr a").await;
        let line = browser.text("#run-logs .message").await;
        assert!(
            line.starts_with("<script>window.pwned=2</script><img"),
            "{line}"
        );
        let ran = browser
            .run("return [window.pwned === undefined, document.querySelectorAll('main script, main img').length]", vec![])
            .await;
        assert_eq!(ran, json!([true, 0]), "markup ran or was parsed");
        browser.screenshot("escaped").await;
        browser
    });
}

/// Waits for the page that refuses a request without its CSRF token.
const REFUSED_FOR_CSRF: &str = "return document.title.startsWith('Not allowed') && document.body.innerText.includes('CSRF token') || null";

/// A change without the session's CSRF token is refused, by the API and by the sign-out
/// form; the sign-in form without its token is refused too.
#[test]
#[cfg_attr(
    not(vivarium_browser),
    ignore = "needs chromium and chromium-driver: run .ci/browser (as root) first"
)]
fn requests_without_the_csrf_token_are_refused() {
    let data = data_dir();
    let server = Server::start(data.path());
    let base = base(&server);
    with_browser(|browser| async move {
        browser.sign_in(&base, ROOT_EMAIL, ROOT_PASSWORD).await;
        let answer = browser
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({email: 'forged@example.com'})}).then(async r => done([r.status, (await r.json()).message]));",
                vec![json!(format!("/api/{ORG}/service_accounts"))],
            )
            .await
            .expect("the forged request");
        assert_eq!(answer[0], json!(403), "{answer}");
        assert!(
            answer[1].as_str().unwrap_or_default().contains("CSRF"),
            "{answer}"
        );
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/identities"))
            .await;
        assert!(!browser.page_text().await.contains("forged@example.com"));

        browser
            .run(
                "document.querySelector('form.who input[name=csrf]').value = 'forged'; return null",
                vec![],
            )
            .await;
        browser.click("form.who button").await;
        browser
            .until("the sign-out refusal", REFUSED_FOR_CSRF)
            .await;
        browser.screenshot("csrf-refused").await;

        browser.goto(&format!("{base}/console/sign-in")).await;
        browser
            .run(
                "document.querySelector('input[name=csrf]').value = 'forged'; return null",
                vec![],
            )
            .await;
        browser.type_into("#email", ROOT_EMAIL).await;
        browser.type_into("#password", ROOT_PASSWORD).await;
        browser.click("#sign-in").await;
        browser.until("the sign-in refusal", REFUSED_FOR_CSRF).await;
        browser
    });
}

/// A member without grants sees a page that says what they may not do and what to ask for,
/// not an empty list; a wrong password is told as such.
#[test]
#[cfg_attr(
    not(vivarium_browser),
    ignore = "needs chromium and chromium-driver: run .ci/browser (as root) first"
)]
fn a_member_without_rights_sees_a_clear_refusal() {
    let data = data_dir();
    let server = Server::start(data.path());
    let member = server.create_user(ORG, &Creds::root(), "viewer@example.com", "member");
    let base = base(&server);
    with_browser(|browser| async move {
        browser.goto(&format!("{base}/console/sign-in")).await;
        browser.type_into("#email", &member.email).await;
        browser.type_into("#password", "not-the-password").await;
        browser.click("#sign-in").await;
        assert_eq!(
            browser.text("#sign-in-error").await,
            "The email or the password is wrong."
        );

        browser.sign_in(&base, &member.email, &member.secret).await;
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/actions"))
            .await;
        let page = browser.text("main").await;
        assert!(page.contains("Not allowed"), "{page}");
        assert!(page.contains("viewer@example.com"), "{page}");
        assert!(
            page.contains("do not allow you to list the actions of this organization"),
            "{page}"
        );
        browser.screenshot("refused").await;
        browser
            .goto(&format!("{base}/console/orgs/{ORG}/identities"))
            .await;
        assert!(browser.text("main").await.contains("administrators only"));
        browser
    });
}
