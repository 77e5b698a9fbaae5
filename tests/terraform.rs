//! Structural checks of `terraform/`, which cannot be planned here (no providers): every
//! module argument is a declared variable, every reference resolves, variables and
//! outputs are described, the cache admits only the functions, there is no NAT gateway
//! by default, and the dashboard and alarms name exactly the metrics `src/metrics.rs`
//! emits. HCL is parsed with `hcl-rs`; references are found in the comment-free text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression};
use product_catalog::metrics;
use regex::Regex;

/// One Terraform module, as far as these checks need it.
#[derive(Debug, Default)]
struct Module {
    dir: PathBuf,
    /// name -> has a default
    variables: BTreeMap<String, bool>,
    undescribed: Vec<String>,
    outputs: BTreeSet<String>,
    locals: BTreeMap<String, Expression>,
    resources: BTreeMap<(String, String), Body>,
    data: BTreeSet<(String, String)>,
    /// name -> (source directory, arguments)
    calls: BTreeMap<String, (PathBuf, BTreeMap<String, Expression>)>,
    /// All `.tf` text with comments removed.
    text: String,
}

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

fn labels(block: &Block) -> Vec<String> {
    block
        .labels()
        .iter()
        .map(|label| label.as_str().to_owned())
        .collect()
}

fn has_string_attr(body: &Body, key: &str) -> bool {
    body.attributes().any(|a| {
        a.key() == key && matches!(a.expr(), Expression::String(s) if !s.trim().is_empty())
    })
}

fn expr_text(expr: &Expression) -> String {
    hcl::format::to_string(expr).unwrap().trim().to_owned()
}

fn strip_comments(text: &str) -> String {
    // Whole-line and trailing `#` / `//` comments; our files put none inside strings.
    let comment = Regex::new(r"(?m)(^\s*(#|//).*$)|(\s+#\s.*$)").unwrap();
    comment.replace_all(text, "").into_owned()
}

fn load(dir: &Path) -> Module {
    let mut module = Module {
        dir: dir.to_owned(),
        ..Module::default()
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let body: Body =
            hcl::parse(&text).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        module.text.push_str(&strip_comments(&text));
        module.text.push('\n');
        for block in body.blocks() {
            let labels = labels(block);
            match block.identifier() {
                "variable" => {
                    let described = has_string_attr(block.body(), "description")
                        && block.body().attributes().any(|a| a.key() == "type");
                    if !described {
                        module.undescribed.push(format!("variable {}", labels[0]));
                    }
                    let has_default = block.body().attributes().any(|a| a.key() == "default");
                    module.variables.insert(labels[0].clone(), has_default);
                }
                "output" => {
                    if !has_string_attr(block.body(), "description") {
                        module.undescribed.push(format!("output {}", labels[0]));
                    }
                    module.outputs.insert(labels[0].clone());
                }
                "locals" => {
                    for attr in block.body().attributes() {
                        module
                            .locals
                            .insert(attr.key().to_owned(), attr.expr().clone());
                    }
                }
                "resource" => {
                    module
                        .resources
                        .insert((labels[0].clone(), labels[1].clone()), block.body().clone());
                }
                "data" => {
                    module.data.insert((labels[0].clone(), labels[1].clone()));
                }
                "module" => {
                    let mut args = BTreeMap::new();
                    let mut source = None;
                    for attr in block.body().attributes() {
                        match attr.key() {
                            "source" => {
                                source = Some(expr_text(attr.expr()).trim_matches('"').to_owned())
                            }
                            "count" | "for_each" | "depends_on" | "providers" => {}
                            key => {
                                args.insert(key.to_owned(), attr.expr().clone());
                            }
                        }
                    }
                    let source = dir.join(source.expect("module without source"));
                    module.calls.insert(labels[0].clone(), (source, args));
                }
                _ => {}
            }
        }
    }
    module
}

fn all_modules() -> Vec<Module> {
    let mut modules = vec![load(&terraform_dir())];
    let mut dirs: Vec<_> = std::fs::read_dir(terraform_dir().join("modules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    modules.extend(dirs.iter().map(|dir| load(dir)));
    modules
}

fn root() -> Module {
    load(&terraform_dir())
}

fn module(name: &str) -> Module {
    load(&terraform_dir().join("modules").join(name))
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// Problems with the references in one module, given every module (for outputs).
fn unresolved_references(module: &Module) -> Vec<String> {
    let mut problems = Vec::new();
    // `removed { from = ... }` names resources that are, on purpose, no longer declared.
    let removed_from = Regex::new(r"(?m)^\s*from\s*=.*$").unwrap();
    let text = &removed_from.replace_all(&module.text, "").into_owned();
    for cap in Regex::new(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)")
        .unwrap()
        .captures_iter(text)
    {
        if !module.variables.contains_key(&cap[1]) {
            problems.push(format!("var.{} is not declared", &cap[1]));
        }
    }
    for cap in Regex::new(r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)")
        .unwrap()
        .captures_iter(text)
    {
        if !module.locals.contains_key(&cap[1]) {
            problems.push(format!("local.{} is not defined", &cap[1]));
        }
    }
    for cap in
        Regex::new(r"\bmodule\.([A-Za-z_][A-Za-z0-9_]*)(?:\[\d+\])?\.([A-Za-z_][A-Za-z0-9_]*)")
            .unwrap()
            .captures_iter(text)
    {
        match module.calls.get(&cap[1]) {
            None => problems.push(format!("module.{} is not called", &cap[1])),
            Some((source, _)) => {
                if !load(source).outputs.contains(&cap[2]) {
                    problems.push(format!("module.{} has no output {}", &cap[1], &cap[2]));
                }
            }
        }
    }
    let reference =
        Regex::new(r"(\bdata\.)?\b((?:aws|random)_[a-z0-9_]+)\.([a-z_][a-z0-9_]*)").unwrap();
    for cap in reference.captures_iter(text) {
        let key = (cap[2].to_owned(), cap[3].to_owned());
        let known = if cap.get(1).is_some() {
            module.data.contains(&key)
        } else {
            module.resources.contains_key(&key)
        };
        if !known {
            let kind = if cap.get(1).is_some() {
                "data source"
            } else {
                "resource"
            };
            problems.push(format!("{kind} {}.{} is not declared", &cap[2], &cap[3]));
        }
    }
    problems
        .into_iter()
        .map(|p| format!("{}: {p}", module.dir.display()))
        .collect()
}

#[test]
fn every_module_parses_and_describes_its_variables_and_outputs() {
    let modules = all_modules();
    assert_eq!(modules.len(), 11, "root + 10 modules");
    let undescribed: Vec<_> = modules
        .iter()
        .flat_map(|m| {
            m.undescribed
                .iter()
                .map(move |what| format!("{}: {what}", m.dir.display()))
        })
        .collect();
    assert!(undescribed.is_empty(), "{undescribed:#?}");
}

#[test]
fn every_module_argument_is_a_declared_variable_and_required_ones_are_passed() {
    assert_eq!(root().calls.len(), 9);
    let mut calls = 0;
    for caller in all_roots_and_modules() {
        for (name, (source, args)) in &caller.calls {
            calls += 1;
            let callee = load(source);
            for arg in args.keys() {
                assert!(
                    callee.variables.contains_key(arg),
                    "module {name} passes {arg}, which {} does not declare",
                    source.display()
                );
            }
            for (variable, has_default) in &callee.variables {
                assert!(
                    *has_default || args.contains_key(variable),
                    "module {name} does not pass the required {variable}"
                );
            }
        }
    }
    assert_eq!(
        calls, 11,
        "9 from the root, the artifact and the state bucket"
    );
}

#[test]
fn every_reference_resolves() {
    let problems: Vec<_> = all_modules()
        .iter()
        .flat_map(unresolved_references)
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_redis_port_is_open_only_to_the_lambda_group() {
    let groups = module("security_groups");
    let cache_group = &groups.resources[&("aws_security_group".to_owned(), "cache".to_owned())];
    assert!(
        cache_group.blocks().all(|b| b.identifier() != "ingress"),
        "no inline ingress on the cache group"
    );
    let mut cache_rules = 0;
    for ((kind, name), body) in &groups.resources {
        if kind == "aws_security_group_rule" {
            panic!("use one aws_vpc_security_group_*_rule per rule ({name})");
        }
        if kind != "aws_vpc_security_group_ingress_rule" {
            continue;
        }
        if attr(body, "security_group_id").map(expr_text).as_deref()
            == Some("aws_security_group.cache.id")
        {
            cache_rules += 1;
            assert_eq!(
                attr(body, "referenced_security_group_id")
                    .map(expr_text)
                    .as_deref(),
                Some("aws_security_group.lambda.id"),
                "{name}"
            );
            for open in ["cidr_ipv4", "cidr_ipv6", "prefix_list_id"] {
                assert!(
                    attr(body, open).is_none(),
                    "{name} opens the cache to {open}"
                );
            }
        }
    }
    assert_eq!(cache_rules, 1);
    // And the cache really sits in that group, the functions in the other.
    let root = root();
    assert_eq!(
        expr_text(&root.calls["cache"].1["security_group_id"]),
        "module.security_groups.cache_security_group_id"
    );
    assert_eq!(
        expr_text(&root.calls["functions"].1["security_group_id"]),
        "module.security_groups.lambda_security_group_id"
    );
}

#[test]
fn default_variables_create_no_nat_gateway() {
    let root = root();
    let default =
        Regex::new(r#"(?s)variable "enable_nat_gateway" \{.*?default\s*=\s*(\w+)"#).unwrap();
    assert_eq!(&default.captures(&root.text).unwrap()[1], "false");
    assert_eq!(
        expr_text(&root.calls["network"].1["enable_nat_gateway"]),
        "var.enable_nat_gateway"
    );
    let network = module("network");
    let mut gated = 0;
    for ((kind, name), body) in &network.resources {
        if matches!(
            kind.as_str(),
            "aws_nat_gateway" | "aws_eip" | "aws_internet_gateway" | "aws_route"
        ) {
            let count = attr(body, "count").map(expr_text).unwrap_or_default();
            assert_eq!(
                count, "var.enable_nat_gateway ? 1 : 0",
                "{kind}.{name} must exist only with NAT enabled"
            );
            gated += 1;
        }
    }
    assert!(gated >= 4);
    // Reaching DynamoDB without NAT: the gateway endpoint on the private route table.
    assert!(
        network
            .resources
            .contains_key(&("aws_vpc_endpoint".to_owned(), "dynamodb".to_owned()))
    );
}

/// The metric names the monitoring module uses for the service's own metrics.
fn monitoring_metric_names(monitoring: &Module) -> BTreeSet<String> {
    let Expression::Object(object) = &monitoring.locals["metric"] else {
        panic!("local.metric must be an object")
    };
    object
        .values()
        .map(|v| expr_text(v).trim_matches('"').to_owned())
        .collect()
}

#[test]
fn the_dashboard_and_alarms_use_exactly_the_metrics_the_code_emits() {
    let monitoring = module("monitoring");
    let emitted: BTreeSet<String> = metrics::ALL.iter().map(|name| name.to_string()).collect();
    assert_eq!(monitoring_metric_names(&monitoring), emitted);
    assert_eq!(
        expr_text(&monitoring.locals["dimension_name"]),
        format!("\"{}\"", metrics::DIMENSION)
    );
    assert_eq!(
        expr_text(&monitoring.locals["dimension_value"]),
        format!("\"{}\"", metrics::SERVICE_PRODUCT_API)
    );

    // Every metric key used resolves, and the hit ratio reads hits and misses.
    let used = Regex::new(r"\blocal\.metric\.([a-z_]+)").unwrap();
    let Expression::Object(object) = &monitoring.locals["metric"] else {
        unreachable!()
    };
    let keys: BTreeSet<String> = object
        .keys()
        .map(|k| hcl::format::to_string(k).unwrap().trim().to_owned())
        .collect();
    let mut seen = BTreeSet::new();
    for cap in used.captures_iter(&monitoring.text) {
        assert!(
            keys.contains(&cap[1]),
            "local.metric.{} is not defined",
            &cap[1]
        );
        seen.insert(cap[1].to_owned());
    }
    assert!(
        seen.contains("hits") && seen.contains("misses") && seen.contains("latency"),
        "{seen:?}"
    );

    // No metric name of ours written out anywhere else in the module (AWS namespaces
    // have their own metrics, such as API Gateway's Latency).
    for name in metrics::ALL {
        let literal = format!("\"{name}\"");
        let stray: Vec<&str> = monitoring
            .text
            .lines()
            .filter(|line| line.contains(&literal) && !line.contains("\"AWS/"))
            .collect();
        assert_eq!(
            stray.len(),
            1,
            "{name} written outside local.metric: {stray:?}"
        );
    }

    // One namespace for code and dashboard: the root variable defaults to the code's,
    // and both the functions and the monitoring module get that variable.
    let root = root();
    let default =
        Regex::new(r#"(?s)variable "metrics_namespace" \{.*?default\s*=\s*"([^"]+)""#).unwrap();
    assert_eq!(
        &default.captures(&root.text).unwrap()[1],
        metrics::NAMESPACE
    );
    for call in ["functions", "monitoring"] {
        assert_eq!(
            expr_text(&root.calls[call].1["metrics_namespace"]),
            "var.metrics_namespace",
            "{call}"
        );
    }
    let functions = module("functions");
    let passes_namespace = Regex::new(r"METRICS_NAMESPACE\s*=\s*var\.metrics_namespace").unwrap();
    assert!(passes_namespace.is_match(&functions.text));

    // cache-invalidator's own metric: same namespace, its dimension value.
    let Expression::Object(invalidator) = &monitoring.locals["invalidator_metric"] else {
        panic!("local.invalidator_metric must be an object")
    };
    let names: BTreeSet<String> = invalidator
        .values()
        .map(|v| expr_text(v).trim_matches('"').to_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([metrics::UNAPPLIABLE_RECORDS.to_owned()])
    );
    assert_eq!(
        expr_text(&monitoring.locals["invalidator_dimension_value"]),
        format!("\"{}\"", metrics::SERVICE_CACHE_INVALIDATOR)
    );

    // The alarms the service promises.
    for alarm in [
        "api_5xx_rate",
        "function_errors",
        "low_hit_ratio",
        "cache_evictions",
        "stream_iterator_age",
        "stream_failures",
        "stream_failures_undelivered",
        "unappliable_records",
    ] {
        assert!(
            monitoring
                .resources
                .contains_key(&("aws_cloudwatch_metric_alarm".to_owned(), alarm.to_owned())),
            "{alarm}"
        );
    }
}

#[test]
fn records_the_stream_gives_up_on_raise_an_alarm_while_they_are_parked() {
    // The on-failure queue of the stream's mapping is the one the alarm watches.
    let functions = module("functions");
    let mapping = &functions.resources[&(
        "aws_lambda_event_source_mapping".to_owned(),
        "stream".to_owned(),
    )];
    let destination = mapping
        .blocks()
        .find(|b| b.identifier() == "destination_config")
        .and_then(|config| {
            config
                .body()
                .blocks()
                .find(|b| b.identifier() == "on_failure")
        })
        .and_then(|on_failure| attr(on_failure.body(), "destination_arn"))
        .map(expr_text);
    assert_eq!(
        destination.as_deref(),
        Some("aws_sqs_queue.stream_failures.arn")
    );
    let output = Regex::new(
        r#"(?s)output "stream_failures_queue_name" \{.*?value\s*=\s*aws_sqs_queue\.stream_failures\.name"#,
    )
    .unwrap();
    assert!(output.is_match(&functions.text));
    let root = root();
    assert_eq!(
        expr_text(&root.calls["monitoring"].1["stream_failures_queue_name"]),
        "module.functions.stream_failures_queue_name"
    );
    // It fires on any message parked (each incident notifies, and it ends by itself), and
    // tells the topic when it starts and ends.
    let monitoring = module("monitoring");
    let alarm = &monitoring.resources[&(
        "aws_cloudwatch_metric_alarm".to_owned(),
        "stream_failures".to_owned(),
    )];
    // (compared without whitespace: the HCL printer spreads lists and objects)
    let squeezed = |text: &str| text.split_whitespace().collect::<String>();
    for (name, value) in [
        ("namespace", "\"AWS/SQS\""),
        ("metric_name", "\"NumberOfMessagesSent\""),
        ("dimensions", "{QueueName=var.stream_failures_queue_name}"),
        ("statistic", "\"Sum\""),
        ("threshold", "0"),
        ("comparison_operator", "\"GreaterThanThreshold\""),
        ("treat_missing_data", "\"notBreaching\""),
        ("alarm_actions", "[aws_sns_topic.alarms.arn]"),
        ("ok_actions", "[aws_sns_topic.alarms.arn]"),
    ] {
        assert_eq!(
            attr(alarm, name)
                .map(|e| squeezed(&expr_text(e)))
                .as_deref(),
            Some(value),
            "{name}"
        );
    }
}

#[test]
fn the_invalidator_may_send_to_its_kms_encrypted_failure_queue() {
    // The stream's mapping parks records with the function's role; SendMessage to an
    // SSE-KMS queue needs kms:GenerateDataKey and kms:Decrypt (SQS developer guide,
    // "Configure KMS permissions for producers"). Without Decrypt nothing is parked, and
    // the alarm on the queue never fires.
    let functions = module("functions");
    let queue = &functions.resources[&("aws_sqs_queue".to_owned(), "stream_failures".to_owned())];
    assert_eq!(
        attr(queue, "kms_master_key_id").map(expr_text).as_deref(),
        Some("var.kms_key_arn")
    );
    let granted = |resource: &str| -> BTreeSet<String> {
        policy_statements(&functions, "cache_invalidator")
            .into_iter()
            .filter(|(effect, _, resources)| {
                effect == "\"Allow\"" && resources.iter().any(|r| r == resource)
            })
            .flat_map(|(_, actions, _)| actions)
            .collect()
    };
    assert!(granted("aws_sqs_queue.stream_failures.arn").contains("\"sqs:SendMessage\""));
    assert_eq!(
        granted("var.kms_key_arn"),
        BTreeSet::from([
            "\"kms:Decrypt\"".to_owned(),
            "\"kms:GenerateDataKey\"".to_owned()
        ])
    );
}

#[test]
fn the_deployed_api_answers_unknown_routes_in_the_contract_s_json_shape() {
    let api = module("api");
    // Only GET and HEAD reach the function: another method would be an invocation each.
    assert_eq!(
        expr_text(&api.locals["methods"])
            .split_whitespace()
            .collect::<String>(),
        "toset([\"GET\",\"HEAD\"])"
    );
    // A method and path no resource answers: a 404 with the function's error shape,
    // instead of API Gateway's 403 "Missing Authentication Token".
    let response = &api.resources[&(
        "aws_api_gateway_gateway_response".to_owned(),
        "unknown_path".to_owned(),
    )];
    assert_eq!(
        attr(response, "response_type").map(expr_text).as_deref(),
        Some("\"MISSING_AUTHENTICATION_TOKEN\"")
    );
    assert_eq!(
        attr(response, "status_code").map(expr_text).as_deref(),
        Some("\"404\"")
    );
    let template = attr(response, "response_templates")
        .map(expr_text)
        .unwrap_or_default();
    for part in [
        "\"application/json\"",
        "error = \"not_found\"",
        "$context.requestId",
    ] {
        assert!(template.contains(part), "{part} not in {template}");
    }
    // AND a change to it is deployed: the stage serves a deployment's snapshot.
    let deployment = &api.resources[&("aws_api_gateway_deployment".to_owned(), "this".to_owned())];
    let triggers = attr(deployment, "triggers")
        .map(expr_text)
        .unwrap_or_default();
    assert!(
        triggers.contains("aws_api_gateway_gateway_response.unknown_path"),
        "{triggers}"
    );
}

#[test]
fn functions_deploy_the_packaged_zips_on_provided_al2023() {
    let functions = module("functions");
    for name in ["product_api", "cache_invalidator"] {
        let body = &functions.resources[&("aws_lambda_function".to_owned(), name.to_owned())];
        assert_eq!(
            attr(body, "runtime").map(expr_text).as_deref(),
            Some("\"provided.al2023\"")
        );
        assert_eq!(
            attr(body, "handler").map(expr_text).as_deref(),
            Some("\"bootstrap\"")
        );
        assert!(
            attr(body, "source_code_hash")
                .map(expr_text)
                .is_some_and(|h| h.starts_with("filebase64sha256("))
        );
        assert!(body.blocks().any(|b| b.identifier() == "vpc_config"));
        assert!(body.blocks().any(|b| b.identifier() == "tracing_config"));
    }
    let mapping = &functions.resources[&(
        "aws_lambda_event_source_mapping".to_owned(),
        "stream".to_owned(),
    )];
    assert!(
        attr(mapping, "function_response_types")
            .map(expr_text)
            .is_some_and(|t| t.contains("\"ReportBatchItemFailures\""))
    );
    assert_eq!(
        attr(mapping, "bisect_batch_on_function_error")
            .map(expr_text)
            .as_deref(),
        Some("true")
    );
}

#[test]
fn the_functions_trust_the_amazon_roots_in_the_aws_partition_and_the_system_s_elsewhere() {
    // Both functions get TRUSTED_ROOTS (it is in the environment they share), under the
    // name the binaries read.
    let functions = module("functions");
    let common = expr_text(&functions.locals["common_environment"]);
    let setting = format!(
        "{} = var.trusted_roots",
        product_catalog::config::TRUSTED_ROOTS
    );
    assert!(common.contains(&setting), "{setting} not in {common}");
    // The module has no default: the root decides. Unset, it follows the partition: the
    // Amazon Trust Services roots sign the aws partition's endpoints; China and GovCloud
    // get the runtime's bundle unless the tfvars say otherwise.
    let block = Regex::new(r#"(?s)variable "trusted_roots" \{(.*?)\n\}"#).unwrap();
    let block = &block
        .captures(&functions.text)
        .expect("variable trusted_roots")[1];
    assert!(!block.contains("default"), "{block}");
    let root = root();
    assert_eq!(variable_default(&root, "trusted_roots"), "null");
    assert_eq!(
        expr_text(&root.locals["trusted_roots"]),
        "coalesce(var.trusted_roots, local.partition == \"aws\" ? \"amazon\" : \"system\")"
    );
    assert_eq!(
        root.calls["functions"]
            .1
            .get("trusted_roots")
            .map(expr_text),
        Some("local.trusted_roots".to_owned())
    );
    // The values the validations admit are the ones the binaries accept.
    for module in [&root, &functions] {
        assert!(
            module
                .text
                .contains("contains([\"amazon\", \"system\"], var.trusted_roots)"),
            "trusted_roots admits other values than amazon and system"
        );
    }
    for value in ["amazon", "system"] {
        assert!(product_catalog::tls::TrustedRoots::parse(value).is_some());
    }
}

// --- First deploy on a fresh account (issue: make deploy and the pipeline) -------------

fn bootstrap() -> Module {
    load(&terraform_dir().join("bootstrap"))
}

/// The roots (stack and bootstrap): the bootstrap's own test requires it to exist.
fn roots() -> Vec<Module> {
    let mut roots = vec![root()];
    if terraform_dir().join("bootstrap").is_dir() {
        roots.push(bootstrap());
    }
    roots
}

/// Every module the deploy path applies: the stack's and the bootstrap.
fn all_roots_and_modules() -> Vec<Module> {
    let mut modules = all_modules();
    modules.extend(roots().into_iter().skip(1));
    modules
}

#[test]
fn the_bootstrap_parses_resolves_and_describes_itself() {
    let bootstrap = bootstrap();
    assert!(
        bootstrap.undescribed.is_empty(),
        "{:?}",
        bootstrap.undescribed
    );
    let problems = unresolved_references(&bootstrap);
    assert!(problems.is_empty(), "{problems:#?}");
    // The state bucket: versioned, encrypted with a key, private, TLS only.
    let (source, args) = &bootstrap.calls["state"];
    assert!(source.ends_with("modules/private_bucket"));
    assert_eq!(expr_text(&args["kms_key_arn"]), "aws_kms_key.state.arn");
    let bucket = module("private_bucket");
    for resource in [
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_ownership_controls",
        "aws_s3_bucket_policy",
    ] {
        assert!(
            bucket
                .resources
                .contains_key(&(resource.to_owned(), "this".to_owned())),
            "{resource}"
        );
    }
    assert!(bucket.text.contains("aws:SecureTransport"));
    assert!(bootstrap.text.contains("use_lockfile = true"));
}

#[test]
fn the_stage_and_its_method_settings_wait_for_the_account_logging_setting() {
    // The setting and its role belong to the bootstrap, applied before any stack (make
    // deploy refuses to run without it), and never destroyed with the stack: provider 6
    // resets the setting when aws_api_gateway_account is destroyed.
    let bootstrap = bootstrap();
    let account = &bootstrap.resources[&("aws_api_gateway_account".to_owned(), "this".to_owned())];
    assert_eq!(
        attr(account, "cloudwatch_role_arn")
            .map(expr_text)
            .as_deref(),
        Some("aws_iam_role.api_gateway_logging[0].arn")
    );
    let api = module("api");
    assert!(
        !api.resources
            .keys()
            .any(|(kind, _)| kind == "aws_iam_role" || kind == "aws_api_gateway_account"),
        "the stack must not own the account-wide logging setting or its role"
    );
    // The stage and its method settings wait for the bootstrap's role.
    for (kind, name) in [
        ("aws_api_gateway_stage", "this"),
        ("aws_api_gateway_method_settings", "all"),
    ] {
        let body = &api.resources[&(kind.to_owned(), name.to_owned())];
        let depends_on = attr(body, "depends_on").map(expr_text).unwrap_or_default();
        assert_eq!(
            depends_on.split_whitespace().collect::<String>(),
            "[data.aws_iam_role.account_logging]",
            "{kind}.{name}"
        );
    }
    assert!(
        api.data
            .contains(&("aws_iam_role".to_owned(), "account_logging".to_owned()))
    );
    assert_eq!(
        expr_text(&root().calls["api"].1["account_logging_role_name"]),
        "\"${var.name}-apigw-logging\""
    );
    assert!(
        bootstrap
            .text
            .contains("name                 = \"${var.name}-apigw-logging\"")
    );
    // Stacks that made the old role and setting themselves forget them, not destroy them.
    let removed =
        Regex::new(r"(?s)removed \{\s*from = (\S+)\s*lifecycle \{\s*destroy = false").unwrap();
    let forgotten: BTreeSet<&str> = removed
        .captures_iter(&api.text)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    assert_eq!(
        forgotten,
        BTreeSet::from(["aws_api_gateway_account.this", "aws_iam_role.logging"])
    );
    // Exposed at the root, in the same tfvars as the bootstrap's setting.
    assert!(root().variables.contains_key("manage_api_gateway_logging"));
    assert!(
        bootstrap
            .variables
            .contains_key("manage_api_gateway_logging")
    );
    let tfvars = std::fs::read_to_string(terraform_dir().join("env/dev.tfvars")).unwrap();
    assert!(tfvars.contains("manage_api_gateway_logging"));
}

fn variable_default(module: &Module, name: &str) -> String {
    let pattern = format!(r#"(?s)variable "{name}" \{{.*?default\s*=\s*([^\n]+)"#);
    Regex::new(&pattern)
        .unwrap()
        .captures(&module.text)
        .unwrap_or_else(|| panic!("{}: variable {name} has no default", module.dir.display()))[1]
        .trim()
        .to_owned()
}

#[test]
fn no_function_reserves_concurrency_by_default() {
    // New accounts may have a concurrency quota of 10, and AWS keeps 100 unreserved.
    assert_eq!(
        variable_default(&root(), "product_api_reserved_concurrency"),
        "-1"
    );
    let functions = module("functions");
    assert_eq!(
        variable_default(&functions, "product_api_reserved_concurrency"),
        "-1"
    );
    for name in ["product_api", "cache_invalidator"] {
        let body = &functions.resources[&("aws_lambda_function".to_owned(), name.to_owned())];
        if let Some(reserved) = attr(body, "reserved_concurrent_executions") {
            assert_eq!(
                expr_text(reserved),
                "var.product_api_reserved_concurrency",
                "{name}"
            );
        }
    }
}

/// The lowest Terraform release a `required_version` admits: ">= 1.9.0, < 2" -> (1, 9).
fn minimum_terraform(module: &Module) -> (u32, u32) {
    let version = Regex::new(r#"required_version\s*=\s*">=\s*(\d+)\.(\d+)"#)
        .unwrap()
        .captures(&module.text)
        .unwrap_or_else(|| panic!("{}: no required_version >= ...", module.dir.display()));
    (version[1].parse().unwrap(), version[2].parse().unwrap())
}

#[test]
fn required_version_admits_no_release_older_than_the_features_used() {
    let cross_variable_validation =
        Regex::new(r#"(?s)variable "(\w+)" \{[^}]*?validation \{\s*condition\s*=\s*([^\n]+)"#)
            .unwrap();
    let variable = Regex::new(r"\bvar\.(\w+)").unwrap();
    for module in all_roots_and_modules() {
        let mut needed = ((1, 0), String::new());
        let mut need = |version: (u32, u32), why: String| {
            if version > needed.0 {
                needed = (version, why);
            }
        };
        for cap in cross_variable_validation.captures_iter(&module.text) {
            if variable.captures_iter(&cap[2]).any(|v| v[1] != cap[1]) {
                need(
                    (1, 9),
                    format!("variable {} validates another variable", &cap[1]),
                );
            }
        }
        if module.text.contains("use_lockfile") || module.dir == terraform_dir() {
            // The stack's state is locked with an S3 lock file (GA in 1.11).
            need((1, 11), "S3-native state locking (use_lockfile)".to_owned());
        }
        let admitted = minimum_terraform(&module);
        assert!(
            admitted >= needed.0,
            "{}: required_version admits {admitted:?}, but {} needs {:?}",
            module.dir.display(),
            needed.1,
            needed.0
        );
    }
}

#[test]
fn no_deprecated_or_partition_bound_attribute() {
    let banned = [
        (
            r"data\.aws_region\.\w+\.name\b",
            "data.aws_region.*.name is deprecated in provider 6: use .region",
        ),
        (
            r"\bmanaged_policy_arns\b",
            "managed_policy_arns is deprecated: use aws_iam_role_policy_attachment",
        ),
        (
            r"\binline_policy\s*\{",
            "inline_policy is deprecated: use aws_iam_role_policy",
        ),
        (
            r#""arn:aws:"#,
            "arn:aws: breaks in GovCloud and China: use the partition",
        ),
        (
            r"GitHubEnterpriseServer",
            "GitHub Enterprise Server needs a host_arn this stack does not create",
        ),
    ];
    for module in all_roots_and_modules() {
        for (pattern, why) in banned {
            assert!(
                !Regex::new(pattern).unwrap().is_match(&module.text),
                "{}: {why}",
                module.dir.display()
            );
        }
    }
}

#[test]
fn the_name_validation_rejects_what_elasticache_rejects() {
    let condition = Regex::new(r#"(?s)variable "name" \{.*?condition\s*=\s*([^\n]+)"#).unwrap();
    let regex_call = Regex::new(r#"regex\("([^"]+)""#).unwrap();
    let bounds =
        Regex::new(r"length\(var\.name\) >= (\d+) && length\(var\.name\) <= (\d+)").unwrap();
    for module in roots() {
        let condition = condition.captures(&module.text).unwrap()[1].to_owned();
        let pattern = regex_call.captures(&condition).unwrap()[1].replace(r"\\", r"\");
        let pattern = Regex::new(&pattern).unwrap();
        let bounds = bounds
            .captures(&condition)
            .expect("the name's length is bounded");
        let (min, max) = (
            bounds[1].parse::<usize>().unwrap(),
            bounds[2].parse::<usize>().unwrap(),
        );
        let valid = |name: &str| name.len() >= min && name.len() <= max && pattern.is_match(name);
        for good in ["product-catalog", "abc", "a1-b2-c3", &"a".repeat(31)] {
            assert!(valid(good), "{good} should be valid");
        }
        for bad in [
            "pc",
            "a--b",
            "abc-",
            "-abc",
            "1abc",
            "Abc",
            "a_b",
            &"a".repeat(32),
        ] {
            assert!(!valid(bad), "{bad} should be refused");
        }
    }
}

#[test]
fn generated_bucket_names_fit_the_37_character_prefix_limit() {
    // The one bucket resource takes its prefix from callers that cut the stack's name.
    let bucket = module("private_bucket");
    assert!(bucket.text.contains("bucket_prefix = var.name_prefix"));
    assert!(bucket.text.contains("length(var.name_prefix) <= 37"));
    let prefix = Regex::new(
        r#"name_prefix\s*=\s*"\$\{trimsuffix\(substr\(var\.name, 0, (\d+)\), "-"\)\}([^"]*)""#,
    )
    .unwrap();
    let mut seen = 0;
    for module in all_roots_and_modules() {
        assert!(
            module.dir.ends_with("private_bucket") || !module.text.contains("bucket_prefix"),
            "{}: buckets come from modules/private_bucket",
            module.dir.display()
        );
        for line in module
            .text
            .lines()
            .filter(|l| l.contains("name_prefix     =") || l.contains("name_prefix ="))
        {
            let cap = prefix.captures(line).unwrap_or_else(|| {
                panic!(
                    "{}: name_prefix must cut the name: {line}",
                    module.dir.display()
                )
            });
            let longest = cap[1].parse::<usize>().unwrap() + cap[2].len();
            assert!(longest <= 37, "{line}: up to {longest} characters");
            seen += 1;
        }
    }
    assert_eq!(seen, 2, "the artifact and the state bucket");
}

/// The `aws_iam_policy_document` data block `name` of a module.
fn policy_document(module: &Module, name: &str) -> Block {
    let text = std::fs::read_dir(&module.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    let body: Body = hcl::parse(&text).unwrap();
    body.into_blocks()
        .find(|b| {
            b.identifier() == "data"
                && labels(b) == ["aws_iam_policy_document".to_owned(), name.to_owned()]
        })
        .unwrap_or_else(|| panic!("no policy document {name}"))
}

/// Statements of an `aws_iam_policy_document` data block: (effect, actions, resources).
fn policy_statements(module: &Module, name: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    let block = policy_document(module, name);
    let strings = |body: &Body, key: &str| -> Vec<String> {
        match attr(body, key) {
            Some(Expression::Array(items)) => items.iter().map(expr_text).collect(),
            Some(other) => vec![expr_text(other)],
            None => Vec::new(),
        }
    };
    block
        .body()
        .blocks()
        .filter(|b| b.identifier() == "statement")
        .map(|s| {
            let effect = attr(s.body(), "effect")
                .map(expr_text)
                .unwrap_or_else(|| "\"Allow\"".to_owned());
            (
                effect,
                strings(s.body(), "actions"),
                strings(s.body(), "resources"),
            )
        })
        .collect()
}

/// The managed policies and inline policies attached to one role of the pipeline module.
fn pipeline_role_policies(pipeline: &Module, role: &str) -> Vec<String> {
    let prefix = format!("aws_iam_role.{role}.");
    pipeline
        .resources
        .iter()
        .filter(|((kind, _), body)| {
            matches!(
                kind.as_str(),
                "aws_iam_role_policy_attachment" | "aws_iam_role_policy"
            ) && attr(body, "role")
                .map(expr_text)
                .is_some_and(|r| r.starts_with(&prefix))
        })
        .map(|((kind, name), body)| {
            format!(
                "{kind}.{name} {}",
                attr(body, "policy_arn").map(expr_text).unwrap_or_default()
            )
        })
        .collect()
}

/// Every Allow statement of `document` that writes stays inside `allowed` resources.
fn assert_writes_only(pipeline: &Module, document: &str, allowed: &[&str]) {
    let read_only = Regex::new(r#"^"[a-z0-9-]+:(Get|List|Describe|BatchGet)[A-Za-z]*"$"#).unwrap();
    for (effect, actions, resources) in policy_statements(pipeline, document) {
        if effect != "\"Allow\"" {
            continue;
        }
        for action in &actions {
            if read_only.is_match(action) || action == "\"kms:Decrypt\"" {
                continue;
            }
            for resource in &resources {
                let scoped = allowed.iter().any(|a| resource.contains(a))
                    || (action == "\"kms:GenerateDataKey\""
                        && (resource == "var.kms_key_arn" || resource == "var.state_kms_key_arn"));
                assert!(scoped, "the {document} role may {action} on {resource}");
            }
        }
    }
}

#[test]
fn the_build_stage_has_no_aws_access_and_the_plan_stage_reads_without_writing() {
    let pipeline = module("pipeline");
    // BuildTest runs unapproved branch code and its dependencies: one inline policy, no
    // managed policy, and it writes only its own logs and artifacts.
    let build = pipeline_role_policies(&pipeline, "build");
    assert_eq!(build.len(), 1, "{build:?}");
    assert!(build[0].starts_with("aws_iam_role_policy."), "{build:?}");
    assert_writes_only(
        &pipeline,
        "build",
        &[
            "module.artifacts.arn",
            "aws_cloudwatch_log_group.builds.arn",
        ],
    );
    assert!(
        !policy_statements(&pipeline, "build")
            .iter()
            .any(|(_, _, resources)| resources.iter().any(|r| r.contains("state"))),
        "the build stage must not reach the state"
    );
    // Plan: AWS's ReadOnlyAccess, no data reads, and writes only its plan, the lock file
    // and its logs.
    let plan = pipeline_role_policies(&pipeline, "plan");
    assert_eq!(plan.len(), 2, "{plan:?}");
    assert!(
        plan.iter().any(|a| a.ends_with(":policy/ReadOnlyAccess\"")),
        "{plan:?}"
    );
    assert_writes_only(
        &pipeline,
        "plan",
        &[
            "module.artifacts.arn",
            ".tflock",
            "aws_cloudwatch_log_group.builds.arn",
        ],
    );
    let denied: Vec<String> = policy_statements(&pipeline, "plan")
        .into_iter()
        .filter(|(effect, _, _)| effect == "\"Deny\"")
        .flat_map(|(_, actions, _)| actions)
        .collect();
    for action in ["s3:GetObject", "dynamodb:Scan", "dynamodb:GetItem"] {
        assert!(
            denied.contains(&format!("\"{action}\"")),
            "plan may {action}"
        );
    }
}

#[test]
fn every_role_carries_the_permissions_boundary_and_the_apply_role_cannot_shed_it() {
    let mut roles = 0;
    for module in all_roots_and_modules() {
        for ((kind, name), body) in &module.resources {
            if kind != "aws_iam_role" {
                continue;
            }
            roles += 1;
            let boundary = attr(body, "permissions_boundary").map(expr_text);
            assert!(
                matches!(
                    boundary.as_deref(),
                    Some("var.permissions_boundary_arn" | "aws_iam_policy.boundary.arn")
                ),
                "{}: role {name} has no permissions boundary",
                module.dir.display()
            );
        }
    }
    assert!(roles >= 7, "{roles} roles");
    let root = root();
    for call in ["network", "functions", "operator", "pipeline"] {
        assert_eq!(
            expr_text(&root.calls[call].1["permissions_boundary_arn"]),
            "data.aws_iam_policy.boundary.arn"
        );
    }
    // The boundary itself denies what would let a bounded role escape it.
    let boundary = policy_statements(&bootstrap(), "boundary");
    let denied: BTreeSet<String> = boundary
        .iter()
        .filter(|(effect, _, _)| effect == "\"Deny\"")
        .flat_map(|(_, actions, _)| actions.clone())
        .collect();
    for action in [
        "iam:CreateRole",
        "iam:PutRolePermissionsBoundary",
        "iam:DeleteRolePermissionsBoundary",
        "iam:CreatePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:*",
        "sts:AssumeRole",
    ] {
        assert!(
            denied.contains(&format!("\"{action}\"")),
            "the boundary does not deny {action}"
        );
    }
    // The apply role: PowerUser (no IAM) plus IAM for this stack's names only.
    let pipeline = module("pipeline");
    for (effect, actions, resources) in policy_statements(&pipeline, "apply") {
        if effect == "\"Allow\"" && actions.iter().any(|a| a.starts_with("\"iam:")) {
            for resource in resources {
                assert!(
                    resource.contains("/${var.name}-*"),
                    "apply role IAM on {resource}"
                );
            }
        }
    }
}

#[test]
fn every_pipeline_stage_and_make_read_the_same_settings_and_state() {
    let pipeline = module("pipeline");
    let project = &pipeline.resources[&("aws_codebuild_project".to_owned(), "this".to_owned())];
    assert_eq!(
        attr(project, "for_each").map(expr_text).as_deref(),
        Some("local.projects")
    );
    let environment = project
        .blocks()
        .find(|b| b.identifier() == "environment")
        .unwrap();
    let variables: Vec<(String, String)> = environment
        .body()
        .blocks()
        .filter(|b| b.identifier() == "environment_variable")
        .map(|b| {
            (
                attr(b.body(), "name").map(expr_text).unwrap(),
                attr(b.body(), "value").map(expr_text).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        variables,
        [("\"DEPLOY_ENV\"".to_owned(), "var.environment".to_owned())],
        "every stage's project"
    );
    // What Plan and Apply run comes from the applied configuration, not from an artifact.
    let Expression::Object(projects) = &pipeline.locals["projects"] else {
        panic!("local.projects must be an object")
    };
    let root = root();
    let mut stages = Vec::new();
    for (stage, settings) in projects {
        let stage = hcl::format::to_string(stage).unwrap().trim().to_owned();
        let Expression::Object(settings) = settings else {
            panic!("{stage}")
        };
        let buildspec = settings
            .iter()
            .find(|(k, _)| hcl::format::to_string(*k).unwrap().trim() == "buildspec")
            .map(|(_, v)| expr_text(v))
            .unwrap();
        match stage.as_str() {
            "build" => assert_eq!(buildspec, "\"buildspec.yml\""),
            "plan" | "apply" => {
                assert_eq!(buildspec, format!("var.{stage}_buildspec"));
                assert_eq!(
                    expr_text(&root.calls["pipeline"].1[format!("{stage}_buildspec").as_str()]),
                    format!("file(\"${{path.root}}/../buildspec-{stage}.yml\")")
                );
            }
            other => panic!("unexpected stage {other}"),
        }
        stages.push(stage);
    }
    assert_eq!(stages, ["build", "plan", "apply"]);
    assert_eq!(
        expr_text(&root.calls["pipeline"].1["environment"]),
        "var.environment"
    );
    // Plan and Apply read the source commit first, then the zips (and the plan).
    let stages = Regex::new(r#"input_artifacts\s*=\s*(\[[^\]]*\])"#).unwrap();
    let inputs: Vec<String> = stages
        .captures_iter(&pipeline.text)
        .map(|c| c[1].split_whitespace().collect())
        .collect();
    assert_eq!(
        inputs,
        [
            "[\"source\"]",
            "[\"source\",\"package\"]",
            "[\"source\",\"package\",\"plan\"]"
        ]
    );
    // One backend, configured from the environment's file, for every way of deploying.
    let backend = std::fs::read_to_string(terraform_dir().join("backend.tf")).unwrap();
    assert!(
        strip_comments(&backend).contains("backend \"s3\" {}"),
        "{backend}"
    );
    // The pipeline keeps itself: enable_pipeline lives in the tfvars every stage reads.
    let tfvars = std::fs::read_to_string(terraform_dir().join("env/dev.tfvars")).unwrap();
    assert!(tfvars.contains("enable_pipeline"), "{tfvars}");
}

#[test]
fn the_boundary_is_looked_up_by_arn_not_by_listing_every_policy() {
    // A lookup by name calls iam:ListPolicies on "*", which the boundary denies to the
    // pipeline's own roles.
    let boundary = Regex::new(r#"(?s)data "aws_iam_policy" "boundary" \{(.*?)\n\}"#).unwrap();
    let body = boundary.captures(&root().text).unwrap()[1].to_owned();
    assert!(body.contains("arn = "), "{body}");
    assert!(!body.contains("name "), "{body}");
}

#[test]
fn the_dashboard_and_alarms_follow_every_cache_node_and_the_serverless_metrics() {
    let monitoring = module("monitoring");
    // Every node of every shard, not the first member only.
    assert!(
        monitoring
            .text
            .contains("for dim in var.cache_metric_dimensions")
    );
    assert!(
        monitoring
            .text
            .contains("for_each = local.eviction_dimensions")
    );
    // Serverless caches publish no DatabaseMemoryUsagePercentage / EngineCPUUtilization.
    let serverless = Regex::new(r"(?s)var\.cache_serverless\s*\?\s*\{([^}]*)\}").unwrap();
    let serverless = &serverless.captures(&monitoring.text).unwrap()[1];
    assert!(serverless.contains("ElastiCacheProcessingUnits"));
    assert!(!serverless.contains("DatabaseMemoryUsagePercentage"));
    assert!(!serverless.contains("EngineCPUUtilization"));
    // A documented metric-math form for the 5xx rate.
    let alarm = &monitoring.resources[&(
        "aws_cloudwatch_metric_alarm".to_owned(),
        "api_5xx_rate".to_owned(),
    )];
    let rate = alarm
        .blocks()
        .find(|b| attr(b.body(), "id").map(expr_text).as_deref() == Some("\"rate\""))
        .unwrap();
    assert_eq!(
        attr(rate.body(), "expression").map(expr_text).as_deref(),
        Some("\"IF(requests > 0, errors / requests, 0)\"")
    );
}

#[test]
fn cloudwatch_may_use_the_key_only_for_this_accounts_alarms() {
    let statements = root();
    let kms = Regex::new(r#"(?s)sid\s*=\s*"CloudWatchAlarmsPublishToTheEncryptedTopic".*?\n  \}"#)
        .unwrap()
        .find(&statements.text)
        .unwrap()
        .as_str()
        .to_owned();
    assert!(kms.contains("aws:SourceAccount"), "{kms}");
    assert!(kms.contains("aws:SourceArn"), "{kms}");
}

#[test]
fn a_new_auth_token_reaches_the_secret_only_after_the_cache_takes_it_beside_the_old_one() {
    // The functions read the secret at a cold start and again when Redis refuses their
    // token: a token in the secret must already be one the cache accepts, and the one
    // they hold must still be accepted (ROTATE, not SET) until they read the new one.
    let cache = module("cache");
    let resource = |kind: &str, name: &str| &cache.resources[&(kind.to_owned(), name.to_owned())];
    let version = resource("aws_secretsmanager_secret_version", "auth");
    let depends_on = attr(version, "depends_on")
        .map(expr_text)
        .unwrap_or_default();
    for cache_side in [
        "aws_elasticache_replication_group.this",
        "aws_elasticache_user.app",
    ] {
        assert!(
            depends_on.contains(cache_side),
            "the secret's value can change before {cache_side}: depends_on = {depends_on}"
        );
    }
    // ROTATE is ElastiCache's own default when no strategy is sent. Setting
    // `auth_token_update_strategy` would make the provider send the token again to a
    // group deployed before it was set (a ModifyReplicationGroup of the same token,
    // minutes of "modifying") on the next apply, with no rotation asked for.
    let group = resource("aws_elasticache_replication_group", "this");
    assert_eq!(
        attr(group, "auth_token_update_strategy").map(expr_text),
        None,
        "a deployed group would be modified on upgrade"
    );
}

#[test]
fn the_memcached_branch_is_a_cross_az_tls_cluster_reached_by_url_without_auth() {
    let cache = module("cache");
    // A Memcached cluster only for engine = "memcached", TLS on, nodes across AZs, in
    // the cache group (open only to the functions, see the Redis port test: same rule,
    // on the engine's port).
    let cluster = &cache.resources[&("aws_elasticache_cluster".to_owned(), "memcached".to_owned())];
    let text = |key: &str| attr(cluster, key).map(expr_text).unwrap_or_default();
    assert_eq!(text("count"), "local.memcached ? 1 : 0");
    assert_eq!(text("engine"), "\"memcached\"");
    assert_eq!(text("transit_encryption_enabled"), "true");
    assert_eq!(text("az_mode"), "\"cross-az\"");
    assert_eq!(text("num_cache_nodes"), "var.memcached_nodes");
    assert_eq!(text("port"), "local.port");
    assert_eq!(
        text("security_group_ids")
            .split_whitespace()
            .collect::<String>(),
        "[var.security_group_id]"
    );
    assert!(
        expr_text(&cache.locals["port"]).contains("local.memcached ? 11211 : 6379"),
        "{:?}",
        cache.locals["port"]
    );
    // No Redis leftovers for Memcached: no AUTH secret, no replication group.
    for (kind, name) in [
        ("random_password", "auth"),
        ("aws_secretsmanager_secret", "auth"),
        ("aws_elasticache_replication_group", "this"),
        ("aws_elasticache_serverless_cache", "this"),
    ] {
        let count = attr(
            &cache.resources[&(kind.to_owned(), name.to_owned())],
            "count",
        )
        .map(expr_text)
        .unwrap_or_default();
        // (`local.token` is Redis with an AUTH token, see below.)
        assert!(
            count.contains("local.redis") || count.contains("local.token"),
            "{kind}.{name}: count = {count}"
        );
    }
    assert!(expr_text(&cache.locals["token"]).starts_with("local.redis &&"));
    // Resources that became conditional keep their state through `moved` blocks.
    for address in [
        "random_password.auth",
        "aws_secretsmanager_secret.auth",
        "aws_cloudwatch_log_group.slow_log",
    ] {
        assert!(
            cache.text.contains(&format!("from = {address}\n")),
            "no moved block for {address}"
        );
    }
    // Nodes across AZs means at least two; the root and the module both say so.
    for (module, var) in [
        (&cache, "memcached_nodes"),
        (&root(), "cache_memcached_nodes"),
    ] {
        assert!(
            module.text.contains(&format!("var.{var} >= 2")),
            "{var} admits a single node"
        );
        // Every node is in the alarms' metric math, which takes at most 10 metrics
        // (a hard CloudWatch limit): an 11th node would be watched by none.
        assert!(
            module.text.contains(&format!("var.{var} <= 10")),
            "{var} admits nodes no alarm watches"
        );
    }
    // The URL lists every node, over TLS; the functions get it instead of REDIS_URL.
    assert!(
        cache
            .text
            .contains("\"memcaches://${join(\",\", local.memcached_nodes)}\"")
    );
    let root = root();
    assert_eq!(
        expr_text(&root.calls["functions"].1["memcached_url"]),
        "module.cache.memcached_url"
    );
    assert_eq!(
        expr_text(&root.calls["cache"].1["memcached_nodes"]),
        "var.cache_memcached_nodes"
    );
    let functions = module("functions");
    assert!(
        functions
            .text
            .contains("? { MEMCACHED_URL = var.memcached_url }\n    : (local.redis_iam"),
        "the functions read MEMCACHED_URL, or Redis's variables"
    );
    assert!(
        functions.text.contains(
            ": { REDIS_URL = var.redis_url, REDIS_AUTH_SECRET_ARN = var.redis_auth_secret_arn }))"
        ),
        "without IAM, the functions read REDIS_URL and its secret"
    );
    assert!(
        functions
            .text
            .contains("\"MEMCACHED_TIMEOUT_MS\" : \"REDIS_TIMEOUT_MS\"")
    );
    // The secret statement exists only when there is a secret (Memcached has none).
    assert!(functions.text.contains(
        "for_each = var.redis_auth_secret_arn == null ? [] : [var.redis_auth_secret_arn]"
    ));
    // The variable names the code reads are the ones the functions set.
    for var in [
        product_catalog::config::MEMCACHED_URL,
        product_catalog::config::MEMCACHED_TIMEOUT_MS,
    ] {
        assert!(functions.text.contains(var), "{var}");
    }
}

#[test]
fn with_iam_auth_the_functions_connect_as_an_iam_user_of_the_cache_and_read_no_secret() {
    let cache = module("cache");
    let resource = |kind: &str, name: &str| &cache.resources[&(kind.to_owned(), name.to_owned())];
    let text = |body: &Body, key: &str| attr(body, key).map(expr_text).unwrap_or_default();
    // The switch, off by default (an existing deployment keeps its token), and only for
    // Valkey or Redis OSS.
    let root = root();
    assert_eq!(variable_default(&root, "cache_auth"), "\"token\"");
    assert!(
        root.text
            .contains("contains([\"token\", \"iam\"], var.cache_auth)")
    );
    assert_eq!(expr_text(&root.calls["cache"].1["auth"]), "var.cache_auth");
    assert_eq!(
        expr_text(&cache.locals["iam"]),
        "local.redis && var.auth == \"iam\""
    );
    // An IAM-enabled user, its name its id (ElastiCache's rule for IAM users), with the
    // ACL of the token's "app" user (tests/integration runs the functions under it).
    let user = resource("aws_elasticache_user", "iam");
    assert_eq!(text(user, "count"), "local.iam ? 1 : 0");
    assert_eq!(text(user, "user_id"), text(user, "user_name"));
    assert_eq!(text(user, "access_string"), "local.app_access_string");
    let mode = user
        .blocks()
        .find(|b| b.identifier() == "authentication_mode")
        .expect("the IAM user has an authentication_mode");
    assert_eq!(text(mode.body(), "type"), "\"iam\"");
    assert!(attr(mode.body(), "passwords").is_none());
    // In a user group with the default user switched off, which the replication group
    // takes instead of a token (the two exclude each other), as the serverless cache does.
    let group = resource("aws_elasticache_user_group", "this");
    assert_eq!(text(group, "count"), "local.user_group ? 1 : 0");
    assert!(expr_text(&cache.locals["user_group"]).contains("local.iam"));
    assert!(text(group, "user_ids").contains("local.iam ? aws_elasticache_user.iam[0].user_id"));
    assert_eq!(
        text(resource("aws_elasticache_user", "default"), "access_string"),
        "\"off -@all\""
    );
    let replication_group = resource("aws_elasticache_replication_group", "this");
    assert_eq!(
        text(replication_group, "auth_token"),
        "local.token ? random_password.auth[0].result : null"
    );
    assert_eq!(
        text(replication_group, "user_group_ids"),
        "local.iam ? [aws_elasticache_user_group.this[0].user_group_id] : null"
    );
    assert_eq!(
        text(replication_group, "transit_encryption_enabled"),
        "true"
    );
    // No token, no secret, no user name in the URL (the functions refuse one with IAM).
    for (kind, name) in [
        ("random_password", "auth"),
        ("aws_secretsmanager_secret", "auth"),
        ("aws_secretsmanager_secret_version", "auth"),
    ] {
        assert_eq!(
            text(resource(kind, name), "count"),
            "local.token ? 1 : 0",
            "{kind}.{name}"
        );
    }
    assert!(expr_text(&cache.locals["user"]).contains("local.token"));
    // The functions get the user, the cache its tokens are signed for and its kind, under
    // the names the binaries read, and may connect to that cache as that user alone.
    let args = &root.calls["functions"].1;
    for (arg, value) in [
        ("redis_iam_user", "module.cache.iam_user_id"),
        ("redis_iam_cache", "module.cache.iam_cache_name"),
        ("redis_iam_serverless", "var.cache_serverless"),
        ("redis_iam_connect_arns", "module.cache.iam_connect_arns"),
    ] {
        assert_eq!(expr_text(&args[arg]), value, "{arg}");
    }
    assert_eq!(
        expr_text(&root.calls["cache"].1["serverless"]),
        "var.cache_serverless"
    );
    let functions = module("functions");
    let environment = expr_text(&functions.locals["cache_environment"]);
    for (name, value) in [
        (
            product_catalog::config::REDIS_IAM_USER,
            "var.redis_iam_user",
        ),
        (
            product_catalog::config::REDIS_IAM_CACHE,
            "var.redis_iam_cache",
        ),
        (
            product_catalog::config::REDIS_IAM_SERVERLESS,
            "tostring(var.redis_iam_serverless)",
        ),
    ] {
        assert!(
            environment.contains(&format!("{name} = {value}")),
            "{name} in {environment}"
        );
    }
    assert_eq!(
        expr_text(&functions.locals["redis_iam"]),
        "var.redis_iam_user != null"
    );
    assert!(functions.text.contains(
        "for_each = length(var.redis_iam_connect_arns) == 0 ? [] : [var.redis_iam_connect_arns]"
    ));
    assert!(
        functions
            .text
            .contains("actions   = [\"elasticache:Connect\"]")
    );
    let outputs =
        std::fs::read_to_string(terraform_dir().join("modules/cache/outputs.tf")).unwrap();
    assert!(outputs.contains(
        "[var.serverless ? aws_elasticache_serverless_cache.this[0].arn : aws_elasticache_replication_group.this[0].arn, aws_elasticache_user.iam[0].arn]"
    ));
    assert!(outputs.contains("value       = local.iam ? var.name : null"));
    // Switching a replication group's mode replaces it: ElastiCache takes a user group
    // in place of a token only with a strategy the provider does not send, and a token
    // added back is accepted beside unauthenticated access. (A Create of the trigger, on
    // the first apply of an existing stack, replaces nothing: only its updates do.)
    let trigger = resource("terraform_data", "auth_mode");
    assert_eq!(text(trigger, "input"), "var.auth");
    assert_eq!(text(trigger, "count"), text(replication_group, "count"));
    let lifecycle = replication_group
        .blocks()
        .find(|b| b.identifier() == "lifecycle")
        .expect("the replication group has a lifecycle block");
    assert_eq!(
        text(lifecycle.body(), "replace_triggered_by")
            .split_whitespace()
            .collect::<String>(),
        "[terraform_data.auth_mode]"
    );
    // IAM needs Valkey or Redis OSS; refused at plan for Memcached.
    assert!(root.text.contains(
        "condition     = var.cache_auth == \"token\" || var.cache_engine != \"memcached\""
    ));
}

#[test]
fn the_memcached_dashboard_and_alarms_use_memcached_metrics_per_node() {
    let monitoring = module("monitoring");
    let memcached = Regex::new(r"memcached_metrics\s*=\s*\{([^}]*)\}").unwrap();
    let memcached = &memcached.captures(&monitoring.text).unwrap()[1];
    // Memcached nodes publish host CPU and memcached's counters, not Redis's engine metrics.
    for metric in [
        "CPUUtilization",
        "Evictions",
        "CurrConnections",
        "GetHits",
        "GetMisses",
        "SwapUsage",
    ] {
        assert!(memcached.contains(metric), "{metric} missing");
    }
    for redis_only in ["EngineCPUUtilization", "DatabaseMemoryUsagePercentage"] {
        assert!(
            !memcached.contains(redis_only),
            "{redis_only} is Redis-only"
        );
    }
    assert!(
        monitoring
            .text
            .contains("local.memcached ? local.memcached_metrics : local.redis_metrics")
    );
    // Per node: CacheClusterId and CacheNodeId.
    let cache = module("cache");
    assert!(
        cache
            .text
            .contains("{ CacheClusterId = var.name, CacheNodeId = node.id }")
    );
    // Its own alarms, only for Memcached, over every node.
    let alarm = &monitoring.resources[&(
        "aws_cloudwatch_metric_alarm".to_owned(),
        "memcached".to_owned(),
    )];
    let for_each = attr(alarm, "for_each").map(expr_text).unwrap_or_default();
    assert!(for_each.starts_with("local.memcached ?"), "{for_each}");
    assert!(for_each.contains("CPUUtilization") && for_each.contains("SwapUsage"));
    assert!(for_each.ends_with(": {}"), "{for_each}");
}

/// The variable names an environment block of the functions sets (`KEY = ...` lines).
fn environment_names(functions: &Module, local: &str) -> BTreeSet<String> {
    // One name per line, or several in a one-line object (`{ A = …, B = … }`).
    let name = Regex::new(r"(?m)(?:^|[{,])\s*([A-Z][A-Z0-9_]*)\s*=[^=]").unwrap();
    name.captures_iter(&expr_text(&functions.locals[local]))
        .map(|c| c[1].to_owned())
        .collect()
}

/// Every `pub const X: &str = "X";` in `src/config.rs`: the variables the binaries read.
fn variables_the_binaries_read() -> BTreeSet<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
        .unwrap();
    let constant = Regex::new(r#"pub const [A-Z0-9_]+: &str = "([A-Z0-9_]+)";"#).unwrap();
    constant
        .captures_iter(&text)
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn both_functions_get_the_same_entry_settings_and_only_variables_the_binaries_read() {
    let functions = module("functions");
    let common = environment_names(&functions, "common_environment");
    let product_api = environment_names(&functions, "product_api_environment");
    // The cache's own variables (REDIS_URL and its secret, or MEMCACHED_URL).
    let cache = environment_names(&functions, "cache_environment");
    for name in ["REDIS_URL", "REDIS_AUTH_SECRET_ARN", "MEMCACHED_URL"] {
        assert!(
            cache.contains(name),
            "{name} not in cache_environment: {cache:?}"
        );
    }
    let known = variables_the_binaries_read();
    // A misspelt name would be ignored by the binaries and leave the default in force.
    for name in common.iter().chain(&product_api).chain(&cache) {
        assert!(
            known.contains(name),
            "the functions set {name}, which src/config.rs never reads"
        );
    }
    // The invalidator rewrites what product-api fills: both must see every entry
    // setting (TTLs, copies, jitter), so they live in the environment both share.
    for setting in product_catalog::config::ENTRY_SETTINGS {
        assert!(
            common.contains(setting),
            "{setting} is not in common_environment, so the functions could disagree on it"
        );
        assert!(
            !product_api.contains(setting),
            "{setting} is overridden for product-api alone"
        );
    }
    // The cache-invalidator function gets exactly the shared environment.
    let invalidator = &functions.resources[&(
        "aws_lambda_function".to_owned(),
        "cache_invalidator".to_owned(),
    )];
    let environment = invalidator
        .blocks()
        .find(|b| b.identifier() == "environment")
        .expect("cache_invalidator has an environment block");
    assert_eq!(
        attr(environment.body(), "variables")
            .map(expr_text)
            .as_deref(),
        Some("local.common_environment")
    );
    // And the root passes every one of its settings through, with the defaults the
    // binaries use when it is unset.
    let root = root();
    let args = &root.calls["functions"].1;
    for (variable, default) in [
        ("stale_ttl_seconds", "86400"),
        ("cache_ttl_jitter_percent", "0"),
    ] {
        assert_eq!(
            args.get(variable).map(expr_text),
            Some(format!("var.{variable}")),
            "the root does not pass {variable} to the functions module"
        );
        assert_eq!(variable_default(&root, variable), default, "{variable}");
    }
}

#[test]
fn every_setting_the_functions_read_is_checked_at_plan_as_they_check_it_at_start() {
    use product_catalog::config::{
        ApiConfig, CACHE_TTL_JITTER_PERCENT, CACHE_TTL_SECONDS, FromEnvironment,
        HTTP_MAX_AGE_SECONDS, NEGATIVE_CACHE_TTL_SECONDS, REDIS_TIMEOUT_MS, STALE_TTL_SECONDS,
    };
    // A value the binaries refuse stops every cold start after an apply that succeeded:
    // the root's validation refuses it at plan instead, with the binaries' own bounds.
    let numbers: [(&str, &str, i64, i64); 6] = [
        ("cache_ttl_seconds", CACHE_TTL_SECONDS, 1, 2_592_000),
        (
            "negative_cache_ttl_seconds",
            NEGATIVE_CACHE_TTL_SECONDS,
            1,
            3600,
        ),
        ("stale_ttl_seconds", STALE_TTL_SECONDS, 0, 2_592_000),
        ("cache_ttl_jitter_percent", CACHE_TTL_JITTER_PERCENT, 0, 50),
        ("redis_timeout_ms", REDIS_TIMEOUT_MS, 1, 10_000),
        ("http_max_age_seconds", HTTP_MAX_AGE_SECONDS, 0, 31_536_000),
    ];
    let root = root();
    let functions = module("functions");
    let binary_takes = |env: &str, value: &str| {
        ApiConfig::from_lookup(|name| match name {
            "REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
            _ if name == env => Some(value.to_owned()),
            _ => None,
        })
        .is_ok()
    };
    for (variable, env, min, max) in numbers {
        // The plan takes exactly the whole numbers from min to max...
        let condition = Regex::new(&format!(
            r#"(?s)variable "{variable}" \{{.*?condition\s*=\s*([^\n]+)"#
        ))
        .unwrap()
        .captures(&root.text)
        .unwrap_or_else(|| panic!("{variable} has no validation"))[1]
            .trim()
            .to_owned();
        assert_eq!(
            condition,
            format!(
                "var.{variable} >= {min} && var.{variable} <= {max} && floor(var.{variable}) == var.{variable}"
            ),
            "{variable}"
        );
        // ...and so do the binaries
        for (value, taken) in [
            (min.to_string(), true),
            (max.to_string(), true),
            ((min - 1).to_string(), false),
            ((max + 1).to_string(), false),
        ] {
            assert_eq!(binary_takes(env, &value), taken, "{env}={value}");
        }
        // ...and the value is written as they parse it ("%d": no "-0", no fraction).
        let written = format!("format(\"%d\", var.{variable})");
        assert!(
            functions.text.contains(&format!("= {written}")),
            "{variable} is not written as {written}"
        );
        assert!(!binary_takes(env, "-0"), "{env}=-0 would be taken");
    }
    // Every root variable the functions' environment reads is one of them, or is
    // validated for what it is (names, URLs, the roots), or computed by the root.
    let reference = Regex::new(r"var\.(\w+)").unwrap();
    let checked: BTreeSet<&str> = numbers.iter().map(|row| row.0).collect();
    for local in [
        "cache_environment",
        "common_environment",
        "product_api_environment",
    ] {
        let text = expr_text(&functions.locals[local]);
        for name in reference.captures_iter(&text).map(|c| c[1].to_owned()) {
            let passed = root.calls["functions"]
                .1
                .get(&name)
                .map(expr_text)
                .unwrap_or_else(|| panic!("the root does not pass {name} to the functions"));
            if passed != format!("var.{name}") || checked.contains(name.as_str()) {
                continue; // computed by the root, or checked above
            }
            let validated = Regex::new(&format!(
                r#"(?s)variable "{name}" \{{[^}}]*?validation \{{"#
            ))
            .unwrap();
            assert!(
                validated.is_match(&root.text),
                "variable {name} reaches the functions' environment unvalidated"
            );
        }
    }
}

#[test]
fn the_metrics_namespace_validation_refuses_what_the_binaries_refuse() {
    use product_catalog::config::{ApiConfig, FromEnvironment, METRICS_NAMESPACE};
    let root = root();
    let condition = Regex::new(r#"(?s)variable "metrics_namespace" \{.*?condition\s*=\s*([^\n]+)"#)
        .unwrap()
        .captures(&root.text)
        .expect("metrics_namespace has a validation")[1]
        .to_owned();
    let allowed = Regex::new(
        &Regex::new(r#"regex\("(\^[^"]+)""#)
            .unwrap()
            .captures(&condition)
            .unwrap()[1],
    )
    .unwrap();
    // The whole condition, so that the model below is the plan's.
    assert_eq!(
        condition.trim(),
        r#"can(regex("^[0-9A-Za-z ._/#:-]{1,255}$", var.metrics_namespace)) && can(regex("[^ ]", var.metrics_namespace)) && !startswith(var.metrics_namespace, ":") && !startswith(var.metrics_namespace, "AWS/")"#
    );
    let plan_takes = |name: &str| {
        allowed.is_match(name)
            && name.contains(|c| c != ' ')
            && !name.starts_with(':')
            && !name.starts_with("AWS/")
    };
    let long = "N".repeat(256);
    for name in [
        "ProductCatalog",
        "ProductCatalog/prod",
        "a.b-c_d#e:f g",
        "",
        "   ",
        ":x",
        "AWS/Lambda",
        "café",
        "a\tb",
        "x*",
        long.as_str(),
        &long[1..],
    ] {
        let binary_takes = ApiConfig::from_lookup(|var| {
            (var == METRICS_NAMESPACE && !name.is_empty()).then(|| name.to_owned())
        })
        .is_ok();
        // (an empty value is unset for the binaries: the default namespace)
        if !name.is_empty() {
            assert_eq!(plan_takes(name), binary_takes, "{name:?}");
        } else {
            assert!(!plan_takes(name));
        }
    }
}

#[test]
fn the_operator_role_edits_the_table_only_under_the_boundary() {
    let operator = module("operator");
    // Exactly: the item actions the CLI sends (tests/integration/catalog_cli.rs records
    // them) on the table, and the key through DynamoDB; nothing on the table itself,
    // which Terraform owns, nothing of the cache, which only the functions reach.
    assert_eq!(
        policy_statements(&operator, "operator"),
        [
            (
                "\"Allow\"".to_owned(),
                [
                    "dynamodb:BatchWriteItem",
                    "dynamodb:DeleteItem",
                    "dynamodb:GetItem",
                    "dynamodb:PutItem"
                ]
                .map(|a| format!("\"{a}\""))
                .to_vec(),
                vec!["var.table_arn".to_owned()],
            ),
            (
                "\"Allow\"".to_owned(),
                vec!["\"kms:Decrypt\"".to_owned()],
                vec!["var.kms_key_arn".to_owned()],
            ),
        ]
    );
    // ...and nothing the tuples above do not show (no not_actions, principals, dynamic
    // statements), the key's statement under its one condition: through DynamoDB, in the
    // stack's region (`StringLike`: the value ends with a wildcard, which `StringEquals`
    // would compare as a character).
    let document = policy_document(&operator, "operator");
    assert!(document.body().attributes().next().is_none());
    for statement in document.body().blocks() {
        assert_eq!(statement.identifier(), "statement");
        let keys: Vec<_> = statement.body().attributes().map(|a| a.key()).collect();
        assert!(
            keys.iter()
                .all(|k| ["sid", "actions", "resources"].contains(k)),
            "{keys:?}"
        );
        let conditions: Vec<_> = statement
            .body()
            .blocks()
            .map(|condition| {
                assert_eq!(condition.identifier(), "condition");
                let text = |key: &str| expr_text(attr(condition.body(), key).unwrap());
                let values: Vec<String> = match attr(condition.body(), "values") {
                    Some(Expression::Array(values)) => values.iter().map(expr_text).collect(),
                    other => panic!("values: {other:?}"),
                };
                (text("test"), text("variable"), values)
            })
            .collect();
        let kms = hcl::format::to_string(statement)
            .unwrap()
            .contains("kms:Decrypt");
        let expected = kms.then(|| {
            (
                "\"StringLike\"".to_owned(),
                "\"kms:ViaService\"".to_owned(),
                vec!["\"dynamodb.${var.region}.amazonaws.com*\"".to_owned()],
            )
        });
        assert_eq!(conditions, Vec::from_iter(expected));
    }
    // Inline on a role of the stack's name, which carries the boundary
    // (every_role_carries_the_permissions_boundary...): a managed policy the apply role
    // could change must not be attached to principals the boundary does not cap; and
    // nothing else, here or elsewhere in the stack, attaches to that role.
    let kinds: Vec<_> = operator
        .resources
        .keys()
        .map(|(k, n)| format!("{k}.{n}"))
        .collect();
    assert_eq!(
        kinds,
        ["aws_iam_role.operator", "aws_iam_role_policy.operator"]
    );
    let role = &operator.resources[&("aws_iam_role".to_owned(), "operator".to_owned())];
    assert_eq!(
        expr_text(attr(role, "name").unwrap()),
        "\"${var.name}-catalog-operator\""
    );
    let policy = &operator.resources[&("aws_iam_role_policy".to_owned(), "operator".to_owned())];
    assert_eq!(
        expr_text(attr(policy, "role").unwrap()),
        "aws_iam_role.operator.id"
    );
    assert_eq!(
        expr_text(attr(policy, "policy").unwrap()),
        "data.aws_iam_policy_document.operator.json"
    );
    for module in all_roots_and_modules() {
        if module.dir.ends_with("operator") {
            continue;
        }
        // (the role's name as an interpolation would build it, and the module's outputs:
        // only the root's output reads one)
        for named in ["}-catalog-operator", "module.operator."] {
            let mentions = module.text.matches(named).count();
            let expected = usize::from(named.starts_with("module.") && module.dir == root().dir);
            assert_eq!(mentions, expected, "{}: {named}", module.dir.display());
        }
    }
    // Trusted: the account, as one AWS principal, narrowed by aws:PrincipalArn to the
    // tfvars' principals when there are any (a principal named in the trust policy
    // itself is checked when written, and a deleted one breaks every later apply).
    let assume = policy_document(&operator, "assume");
    let [statement] = &assume.body().blocks().collect::<Vec<_>>()[..] else {
        panic!("one trust statement")
    };
    let squeezed = |text: &str| text.split_whitespace().collect::<String>();
    assert_eq!(
        squeezed(&hcl::format::to_string(*statement).unwrap()),
        squeezed(
            r#"statement {
  actions = ["sts:AssumeRole", "sts:TagSession"]

  principals {
    type = "AWS"
    identifiers = [var.account_root_arn]
  }

  dynamic "condition" {
    for_each = length(var.principal_arns) > 0 ? [var.principal_arns] : []

    content {
      test = "ArnLike"
      variable = "aws:PrincipalArn"
      values = condition.value
    }
  }
}"#
        )
    );
    let root = root();
    let (_, args) = &root.calls["operator"];
    assert_eq!(expr_text(&args["table_arn"]), "module.data.table_arn");
    assert_eq!(expr_text(&args["kms_key_arn"]), "aws_kms_key.this.arn");
    assert_eq!(expr_text(&args["region"]), "local.region");
    assert_eq!(
        expr_text(&args["account_root_arn"]),
        "\"arn:${local.partition}:iam::${local.account_id}:root\""
    );
    assert_eq!(
        expr_text(&args["principal_arns"]),
        "var.operator_principal_arns"
    );
    assert_eq!(variable_default(&root, "operator_principal_arns"), "[]");
    assert!(root.outputs.contains("catalog_operator_role_arn"));
}

#[test]
fn operator_principals_must_be_users_or_roles_named_by_arn() {
    let condition =
        Regex::new(r#"(?s)variable "operator_principal_arns" \{.*?condition\s*=\s*([^\n]+)"#)
            .unwrap();
    let condition = condition.captures(&root().text).unwrap()[1].to_owned();
    assert!(condition.starts_with("alltrue([for arn in var.operator_principal_arns : can(regex("));
    let pattern = Regex::new(r#"regex\("([^"]+)""#)
        .unwrap()
        .captures(&condition)
        .unwrap()[1]
        .replace(r"\\", r"\");
    let pattern = Regex::new(&pattern).unwrap();
    for good in [
        "arn:aws:iam::123456789012:role/catalog-editors",
        "arn:aws:iam::123456789012:user/ana",
        "arn:aws-us-gov:iam::123456789012:role/ci",
        "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Editors_*",
    ] {
        assert!(pattern.is_match(good), "{good} should be taken");
    }
    for bad in [
        "*",
        "",
        "123456789012",
        "arn:aws:iam::123456789012:root",
        "arn:aws:iam::123456789012:role/*",
        "arn:aws:iam::*:role/editors",
        "arn:aws:sts::123456789012:assumed-role/editors/ana",
        "role/editors",
    ] {
        assert!(!pattern.is_match(bad), "{bad} should be refused");
    }
}
