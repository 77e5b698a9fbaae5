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
    let text = &module.text;
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
    assert_eq!(modules.len(), 9, "root + 8 modules");
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
    let root = root();
    assert_eq!(root.calls.len(), 8);
    for (name, (source, args)) in &root.calls {
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

    // The alarms the service promises.
    for alarm in [
        "api_5xx_rate",
        "function_errors",
        "low_hit_ratio",
        "cache_evictions",
        "stream_iterator_age",
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
