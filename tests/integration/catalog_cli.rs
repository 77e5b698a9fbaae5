//! The `catalog` CLI against the emulator: `load` checks the whole file before writing
//! anything and names every bad item; `get` then `put` keeps sets and binary as they are;
//! `delete` drops the product's cache entry and its last-known-good copy; the operator
//! policy Terraform makes grants exactly the DynamoDB actions the commands send.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, Select};
use product_catalog::adapters::DynamoStore;
use serde_json::{Value, json};

use crate::helpers::{Emulator, RedisServer, dynamodb_endpoint, fresh_table};

/// Runs `catalog` with the test environment and `TABLE_NAME`.
fn catalog(table: &DynamoStore, args: &[&str]) -> Output {
    catalog_with(table, &[], args)
}

/// The same, with more variables.
fn catalog_with(table: &DynamoStore, env: &[(&str, &str)], args: &[&str]) -> Output {
    dynamodb_endpoint();
    Command::new(env!("CARGO_BIN_EXE_catalog"))
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
        .env("TABLE_NAME", table.table().as_str())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn create_table_returns_once_the_table_takes_writes() {
    // GIVEN a DynamoDB whose new tables stay CREATING for a second, refusing writes as
    // if they did not exist (as DynamoDB does for seconds after CreateTable answers)
    let emulator = Emulator::creating_tables_for(Duration::from_secs(1));
    let run = |args: &[&str]| {
        dynamodb_endpoint();
        Command::new(env!("CARGO_BIN_EXE_catalog"))
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k.starts_with("AWS_")))
            .env("AWS_ENDPOINT_URL_DYNAMODB", &emulator.endpoint)
            .env("TABLE_NAME", "Products")
            .args(args)
            .output()
            .unwrap()
    };
    // WHEN an operator creates the table and loads the catalog at once, as `make dev`
    // does
    let created = run(&["create-table"]);
    assert!(created.status.success(), "{created:?}");
    let status = describe_table_status(&emulator.endpoint, "Products");
    let loaded = run(&[
        "load",
        concat!(env!("CARGO_MANIFEST_DIR"), "/data/products.json"),
    ]);
    // THEN the table was ready when create-table said so, and the load went through
    assert_eq!(status, "ACTIVE");
    assert!(
        String::from_utf8_lossy(&created.stdout).contains("table Products ready"),
        "{created:?}"
    );
    assert!(loaded.status.success(), "{loaded:?}");
}

/// The table's status as `DescribeTable` gives it, from a client of the test's own.
fn describe_table_status(endpoint: &str, table: &str) -> String {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let config = aws_sdk_dynamodb::config::Builder::from(
            &product_catalog::adapters::aws::sdk_config().await,
        )
        .endpoint_url(endpoint)
        .build();
        aws_sdk_dynamodb::Client::from_conf(config)
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .and_then(|table| table.table_status)
            .map(|status| status.as_str().to_owned())
            .unwrap_or_default()
    })
}

async fn count(table: &DynamoStore) -> i32 {
    let client =
        product_catalog::adapters::aws::dynamodb_client(product_catalog::tls::TrustedRoots::System)
            .await;
    client
        .scan()
        .table_name(table.table().as_str())
        .select(Select::Count)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .count()
}

/// `n` valid products, P-0 to P-(n-1).
fn products(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"productId": format!("P-{i}"), "name": format!("product {i}"), "price": 1.5}))
        .collect()
}

fn write_file(dir: &tempfile::TempDir, name: &str, items: &[Value]) -> String {
    let path = dir.path().join(name);
    let text = serde_json::to_string(items)
        .unwrap()
        .replace("\"__1e400__\"", "1e400");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn load_writes_nothing_when_any_item_is_invalid_and_names_each() {
    let dir = tempfile::tempdir().unwrap();
    // Bad items sit in the second batch of 25, after a batch that would be written.
    let mut duplicate = products(40);
    duplicate[27] = json!({"productId": "P-3", "name": "again"}); // id of item [3]
    duplicate[33] = json!({"productId": "P-30", "name": "again"}); // in its own batch
    let mut invalid_id = products(40);
    invalid_id[30] = json!({"productId": "a/b", "name": "slash"});
    invalid_id[31] = json!({"productId": "x".repeat(257)});
    let mut too_large = products(40);
    too_large[30] = json!({"productId": "P-big", "text": "x".repeat(410 * 1024)});
    let mut bad_number = products(40);
    // serde_json cannot hold 1e400 in a Value: a placeholder, replaced in the file's text.
    bad_number[30] = json!({"productId": "P-num", "n": "__1e400__"});
    let cases = [
        (
            "duplicate",
            duplicate,
            vec![("[27]", "P-3"), ("[33]", "P-30")],
        ),
        (
            "invalid-id",
            invalid_id,
            vec![("[30]", "a/b"), ("[31]", "xxxx")],
        ),
        ("too-large", too_large, vec![("[30]", "P-big")]),
        ("bad-number", bad_number, vec![("[30]", "P-num")]),
    ];
    for (name, items, named) in cases {
        // GIVEN an empty table and a file with one or more bad items among good ones
        let table = fresh_table().await;
        let file = write_file(&dir, &format!("{name}.json"), &items);
        // WHEN it is loaded
        let output = catalog(&table, &["load", &file]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        // THEN the load fails, writes nothing, and names every bad item
        assert!(!output.status.success(), "{name}: {stderr}");
        assert_eq!(
            count(&table).await,
            0,
            "{name}: items were written: {stderr}"
        );
        for (index, id) in named {
            assert!(
                stderr
                    .lines()
                    .any(|line| line.contains(index) && line.contains(id)),
                "{name}: item {index} ({id}) not named: {stderr}"
            );
        }
        assert!(stderr.contains("nothing was written"), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn load_counts_exactly_what_the_table_holds() {
    // GIVEN an empty table and 60 valid products (three batches)
    let dir = tempfile::tempdir().unwrap();
    let table = fresh_table().await;
    let file = write_file(&dir, "ok.json", &products(60));
    // WHEN they are loaded
    let output = catalog(&table, &["load", &file]);
    // THEN the CLI says 60 and the table holds 60
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("loaded 60 products"), "{stdout}");
    assert_eq!(count(&table).await, 60);
}

#[tokio::test]
async fn get_then_put_keeps_sets_and_binary() {
    // GIVEN an item with string, number and binary sets and a binary value
    let table = fresh_table().await;
    let item: HashMap<String, AttributeValue> = HashMap::from([
        ("productId".to_owned(), AttributeValue::S("P-sets".into())),
        (
            "tags".to_owned(),
            AttributeValue::Ss(vec!["red".into(), "blue".into()]),
        ),
        (
            "sizes".to_owned(),
            AttributeValue::Ns(vec!["38".into(), "39.5".into()]),
        ),
        (
            "blobs".to_owned(),
            AttributeValue::Bs(vec![b"a".to_vec().into(), b"b".to_vec().into()]),
        ),
        (
            "icon".to_owned(),
            AttributeValue::B(b"\x89PNG".to_vec().into()),
        ),
        (
            "list".to_owned(),
            AttributeValue::L(vec![AttributeValue::S("x".into())]),
        ),
    ]);
    let client =
        product_catalog::adapters::aws::dynamodb_client(product_catalog::tls::TrustedRoots::System)
            .await;
    client
        .put_item()
        .table_name(table.table().as_str())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    // WHEN it is read with `catalog get`, edited, and written back with `catalog put`
    let got = catalog(&table, &["get", "P-sets"]);
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    let mut product: Value = serde_json::from_slice(&got.stdout).unwrap();
    product["name"] = "edited".into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("product.json");
    std::fs::write(&path, product.to_string()).unwrap();
    let put = catalog(&table, &["put", path.to_str().unwrap()]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    // THEN the stored types are unchanged
    let stored = client
        .get_item()
        .table_name(table.table().as_str())
        .key("productId", AttributeValue::S("P-sets".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let kind = |name: &str| match stored.get(name) {
        Some(AttributeValue::Ss(_)) => "SS",
        Some(AttributeValue::Ns(_)) => "NS",
        Some(AttributeValue::Bs(_)) => "BS",
        Some(AttributeValue::B(_)) => "B",
        Some(AttributeValue::L(_)) => "L",
        Some(AttributeValue::S(_)) => "S",
        other => panic!("{name}: {other:?}"),
    };
    assert_eq!(
        ["tags", "sizes", "blobs", "icon", "list", "name"].map(kind),
        ["SS", "NS", "BS", "B", "L", "S"]
    );
}

#[tokio::test]
async fn delete_drops_the_entry_and_the_last_known_good_copy() {
    // GIVEN a product in the table, cached, with its last-known-good copy
    let table = fresh_table().await;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(&dir, "one.json", &products(1));
    assert!(catalog(&table, &["load", &file]).status.success());
    let client = redis.client().await;
    let copy_key = product_catalog::cache_entry::stale_key("product:P-0");
    for key in ["product:P-0", copy_key.as_str()] {
        let _: () = fred::prelude::KeysInterface::set(&client, key, "x", None, None, false)
            .await
            .unwrap();
    }
    // WHEN the operator deletes it with `catalog delete`
    let url = redis.url();
    let deleted = catalog_with(&table, &[("REDIS_URL", &url)], &["delete", "P-0"]);
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    // THEN neither key is left: a deleted product is never served, stale or not
    let left: i64 =
        fred::prelude::KeysInterface::exists(&client, vec!["product:P-0", copy_key.as_str()])
            .await
            .unwrap();
    assert_eq!(left, 0);
}

/// A TCP endpoint in front of the emulator that records the DynamoDB action of every
/// request passing through it (its `X-Amz-Target` header).
struct RecordingEndpoint {
    url: String,
    sent: Arc<Mutex<Vec<u8>>>,
    open: Arc<AtomicUsize>,
}

impl RecordingEndpoint {
    fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let (record, count) = (Arc::clone(&sent), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let mut client = client.unwrap();
                let mut server = TcpStream::connect(&upstream).unwrap();
                let (mut answers, mut back) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut answers, &mut back));
                let (record, count) = (Arc::clone(&record), Arc::clone(&count));
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut chunk = [0u8; 16 * 1024];
                    while let Ok(n @ 1..) = client.read(&mut chunk) {
                        record.lock().unwrap().extend_from_slice(&chunk[..n]);
                        if server.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server.shutdown(Shutdown::Write);
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { url, sent, open }
    }

    /// The actions of every request so far, once each, after the clients have gone.
    fn actions(&self) -> BTreeSet<String> {
        let until = Instant::now() + Duration::from_secs(5);
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(Instant::now() < until, "a client is still connected");
            std::thread::sleep(Duration::from_millis(10));
        }
        let target = regex::Regex::new(r"(?im)^x-amz-target:\s*DynamoDB_\d+\.(\w+)\s*$").unwrap();
        let sent = self.sent.lock().unwrap();
        target
            .captures_iter(&String::from_utf8_lossy(&sent))
            .map(|c| format!("dynamodb:{}", &c[1]))
            .collect()
    }
}

/// The DynamoDB actions `terraform/modules/operator` grants the `catalog` CLI.
fn operator_policy_dynamodb_actions() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/terraform/modules/operator/main.tf"
    );
    let body: hcl::Body = hcl::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let document = body
        .blocks()
        .find(|b| {
            b.identifier() == "data"
                && b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(["aws_iam_policy_document", "operator"])
        })
        .expect("the operator's policy document");
    document
        .body()
        .blocks()
        .filter(|b| b.identifier() == "statement")
        .filter_map(|s| s.body().attributes().find(|a| a.key() == "actions"))
        .flat_map(|actions| match actions.expr() {
            hcl::Expression::Array(items) => items.clone(),
            other => panic!("actions is not a list: {other:?}"),
        })
        .map(|action| match action {
            hcl::Expression::String(action) => action,
            other => panic!("an action is not a string: {other:?}"),
        })
        .filter(|action| action.starts_with("dynamodb:"))
        .collect()
}

#[tokio::test]
async fn the_operator_policy_grants_exactly_what_the_cli_calls_on_a_deployed_table() {
    // GIVEN a table made beforehand (in AWS, by Terraform) and an endpoint that records
    // which DynamoDB actions reach it, and a cache
    let table = fresh_table().await;
    let redis = RedisServer::start();
    let endpoint = RecordingEndpoint::start(&dynamodb_endpoint());
    let dir = tempfile::tempdir().unwrap();
    let catalog_file = write_file(&dir, "catalog.json", &products(30));
    let one = dir.path().join("one.json");
    std::fs::write(&one, r#"{"productId": "P-3", "name": "new"}"#).unwrap();
    let one = one.to_str().unwrap();
    let url = redis.url();
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.url.as_str()),
        ("REDIS_URL", &url),
    ];
    // WHEN an operator runs every command but create-table through it
    let commands: [&[&str]; 5] = [
        &["load", catalog_file.as_str()],
        &["get", "P-1"],
        &["put", one],
        &["delete", "P-2"],
        &["invalidate", "P-4"],
    ];
    for args in commands {
        let run = catalog_with(&table, &env, args);
        assert!(run.status.success(), "{args:?}: {run:?}");
    }
    // (every command the CLI has: a new one must be run here too)
    let run: BTreeSet<&str> = commands.iter().map(|args| args[0]).collect();
    let help = catalog_with(&table, &[], &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let listed: BTreeSet<&str> = help
        .split_once("Commands:")
        .and_then(|(_, rest)| rest.split_once("\n\n"))
        .expect("a command list in --help")
        .0
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| !["create-table", "help"].contains(command))
        .collect();
    assert_eq!(run, listed);
    // THEN the policy Terraform gives operators grants each action they called, and
    // nothing else on the table
    assert_eq!(endpoint.actions(), operator_policy_dynamodb_actions());
}
