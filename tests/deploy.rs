//! The deploy path (`make bootstrap`, `validate`, `plan`, `deploy`, `destroy`, `url`, and
//! the pipeline's `deploy.sh take-zips` and `apply-approved`) run
//! against a stand-in `terraform` (tests/fixtures/deploy/terraform) that records its
//! arguments and behaves as Terraform does where it matters: it refuses
//! `apply -input=false` without a saved plan or `-auto-approve`, reads the approval on
//! standard input, applies a saved plan without asking, and fails `init` on a missing
//! backend file or on local state next to a remote backend. Each test copies the
//! Makefile, the scripts and `terraform/env/` into a temporary project, so nothing here
//! touches the checkout. `package` is skipped (`make -o package`): it builds the zips.
//! Also here: the buildspecs, parsed as YAML, and the Redis version check.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use regex::Regex;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const BACKEND: &str = "terraform/env/dev.s3.tfbackend";

/// A throw-away copy of what the deploy path reads, with the stand-in terraform on PATH.
struct Project {
    dir: tempfile::TempDir,
    bin: tempfile::TempDir,
}

/// What one `make` run did.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    /// One entry per terraform call: "<chdir>|<arguments>".
    calls: Vec<String>,
}

impl Run {
    fn applies(&self) -> Vec<&String> {
        self.calls
            .iter()
            .filter(|call| call.contains("|apply") || call.contains("|destroy"))
            .collect()
    }
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "Makefile",
            "scripts/deploy.sh",
            "scripts/seed.sh",
            "scripts/smoke.sh",
            "terraform/backend.tf",
            "terraform/env/dev.tfvars",
        ] {
            let to = dir.path().join(file);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(repo().join(file), &to).unwrap();
        }
        fs::create_dir_all(dir.path().join("terraform/bootstrap")).unwrap();
        let bin = tempfile::tempdir().unwrap();
        fs::copy(
            repo().join("tests/fixtures/deploy/terraform"),
            bin.path().join("terraform"),
        )
        .unwrap();
        Self { dir, bin }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A project that `make bootstrap` already ran in.
    fn bootstrapped() -> Self {
        let project = Self::new();
        fs::write(
            project.path(BACKEND),
            "bucket       = \"pc-tfstate-123\"\nkey          = \"product-catalog/dev.tfstate\"\n\
             region       = \"eu-west-1\"\nencrypt      = true\n\
             kms_key_id   = \"arn:aws:kms:eu-west-1:111122223333:key/abc\"\nuse_lockfile = true\n",
        )
        .unwrap();
        project
    }

    /// `make -o package <args>` with `stdin` as standard input (None: closed at once).
    fn make(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let log = self.dir.path().join("terraform-calls.log");
        let _ = fs::remove_file(&log);
        let path = format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap()
        );
        let mut command = Command::new("make");
        command
            .arg("--no-print-directory")
            .args(["-o", "package"])
            .args(args)
            .current_dir(self.dir.path())
            .env("PATH", path)
            .env("FAKE_TF_LOG", &log)
            .env_remove("DEPLOY_ENV")
            .env_remove("AUTO_APPROVE")
            .env_remove("BOOTSTRAP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let output = child.wait_with_output().unwrap();
        let calls = fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            calls,
        }
    }
}

const STATE_VARS: &str = "-var=state_bucket=pc-tfstate-123 -var=state_key=product-catalog/dev.tfstate \
                          -var=state_kms_key_arn=arn:aws:kms:eu-west-1:111122223333:key/abc";

fn stack_plan(extra: &str) -> String {
    format!(
        "terraform|plan -input=false -var-file=env/dev.tfvars -var=environment=dev {STATE_VARS} -out=dev.tfplan{extra}"
    )
}

const STACK_INIT: &str =
    "terraform|init -input=false -backend-config=env/dev.s3.tfbackend -reconfigure";

#[test]
fn the_stand_in_behaves_as_terraform_does_on_an_unplanned_non_interactive_apply() {
    // GIVEN the stand-in on PATH WHEN the old Makefile's command runs without a terminal
    let project = Project::new();
    let output = Command::new(project.bin.path().join("terraform"))
        .args(["-chdir=terraform", "apply", "-input=false"])
        .env("FAKE_TF_LOG", project.path("log"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // THEN it fails as Terraform does
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("error asking for approval"));
}

#[test]
fn deploy_before_bootstrap_stops_and_names_make_bootstrap() {
    // GIVEN a fresh project (no backend file) WHEN make deploy runs
    let run = Project::new().make(&["deploy"], Some("yes\n"), &[]);
    // THEN it stops before terraform does anything, and says what to run
    assert!(!run.success);
    assert!(
        run.stderr.contains("make bootstrap DEPLOY_ENV=dev"),
        "{}",
        run.stderr
    );
    assert!(run.calls.is_empty(), "{:?}", run.calls);
}

#[test]
fn bootstrap_shows_its_plan_asks_applies_that_plan_and_writes_the_backend_file() {
    // GIVEN a fresh project WHEN make bootstrap is answered yes
    let project = Project::new();
    let run = project.make(&["bootstrap"], Some("yes\n"), &[]);
    // THEN it plans, applies exactly the saved plan, and writes the backend settings
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.calls,
        [
            "terraform/bootstrap|init -input=false -reconfigure -backend-config=path=dev.tfstate",
            "terraform/bootstrap|plan -input=false -var-file=../env/dev.tfvars -var=environment=dev -out=dev.tfplan",
            "terraform/bootstrap|apply -input=false dev.tfplan",
            "terraform/bootstrap|output -raw backend_config",
        ]
    );
    let backend = fs::read_to_string(project.path(BACKEND)).unwrap();
    assert!(backend.contains("use_lockfile = true"), "{backend}");
    assert!(run.stderr.contains("Commit it"), "{}", run.stderr);
}

#[test]
fn bootstrap_answered_no_creates_nothing() {
    let project = Project::new();
    let run = project.make(&["bootstrap"], Some("no\n"), &[]);
    assert!(!run.success);
    assert!(run.applies().is_empty(), "{:?}", run.calls);
    assert!(!project.path(BACKEND).exists());
}

#[test]
fn deploy_shows_the_plan_asks_and_applies_exactly_that_plan() {
    // GIVEN a bootstrapped project WHEN make deploy is answered yes
    let run = Project::bootstrapped().make(&["deploy"], Some("yes\n"), &[]);
    // THEN: remote state, the environment's settings, a saved plan, that plan applied
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.calls,
        [
            STACK_INIT.to_owned(),
            stack_plan(""),
            "terraform|apply -input=false dev.tfplan".to_owned(),
        ]
    );
    assert!(run.stderr.contains("Type yes to go on"), "{}", run.stderr);
}

#[test]
fn deploy_answered_anything_but_yes_applies_nothing() {
    for answer in ["no\n", "y\n", "YES please\n", "\n"] {
        let run = Project::bootstrapped().make(&["deploy"], Some(answer), &[]);
        assert!(!run.success, "{answer:?}");
        assert!(run.applies().is_empty(), "{answer:?}: {:?}", run.calls);
        assert!(run.stderr.contains("nothing was applied"), "{}", run.stderr);
    }
}

#[test]
fn deploy_with_no_terminal_applies_nothing_and_names_auto_approve() {
    // GIVEN standard input closed at once (CI, a pipe) WHEN make deploy runs
    let run = Project::bootstrapped().make(&["deploy"], None, &[]);
    // THEN nothing is applied and the message says how to apply without asking
    assert!(!run.success);
    assert!(run.applies().is_empty(), "{:?}", run.calls);
    assert!(run.stderr.contains("AUTO_APPROVE=1"), "{}", run.stderr);
}

#[test]
fn deploy_auto_approve_applies_the_saved_plan_without_asking() {
    let run = Project::bootstrapped().make(&["deploy", "AUTO_APPROVE=1"], None, &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.applies(), ["terraform|apply -input=false dev.tfplan"]);
    assert!(!run.calls.iter().any(|call| call.contains("-auto-approve")));
}

#[test]
fn plan_only_plans() {
    let project = Project::bootstrapped();
    let run = project.make(&["plan"], None, &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.calls, [STACK_INIT.to_owned(), stack_plan("")]);
    assert!(project.path("terraform/dev.tfplan").exists());
}

#[test]
fn validate_initialises_the_remote_state_then_validates() {
    let run = Project::bootstrapped().make(&["validate"], None, &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.calls, [STACK_INIT, "terraform|validate"]);
}

impl Project {
    /// `bash scripts/deploy.sh <args>` as the pipeline runs it (no make, no terminal).
    fn script(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let log = self.dir.path().join("terraform-calls.log");
        let _ = fs::remove_file(&log);
        let output = Command::new("bash")
            .arg("scripts/deploy.sh")
            .args(args)
            .current_dir(self.dir.path())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.path().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("FAKE_TF_LOG", &log)
            .env("DEPLOY_ENV", "dev")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            calls: fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }
}

#[test]
fn the_pipeline_applies_only_a_plan_equal_to_the_approved_one() {
    // GIVEN the plan the Plan stage saved, and the same commit, zips and state in Apply
    let project = Project::bootstrapped();
    let run = project.script(&["plan"], &[]);
    assert!(run.success, "{}", run.stderr);
    fs::rename(
        project.path("terraform/dev.tfplan"),
        project.path("terraform/approved.tfplan"),
    )
    .unwrap();
    // WHEN Apply plans again THEN it applies its own plan, without a question
    let run = project.script(&["apply-approved", "approved.tfplan"], &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.calls,
        [
            STACK_INIT.to_owned(),
            stack_plan(""),
            "terraform|show -json approved.tfplan".to_owned(),
            "terraform|show -json dev.tfplan".to_owned(),
            "terraform|apply -input=false dev.tfplan".to_owned(),
        ]
    );
    // GIVEN an approved plan that is not what this commit plans (tampered with, or the
    // state changed since) THEN nothing is applied
    let run = project.script(
        &["apply-approved", "approved.tfplan"],
        &[(
            "FAKE_TF_PLAN_JSON",
            r#"{"resource_changes": [{"address": "aws_iam_role.attacker", "change": {"actions": ["create"]}}]}"#,
        )],
    );
    assert!(!run.success);
    assert!(
        run.stderr.contains("differs from the approved plan"),
        "{}",
        run.stderr
    );
    assert!(run.applies().is_empty(), "{:?}", run.calls);
    // GIVEN no approved plan THEN nothing runs
    let run = project.script(&["apply-approved", "missing.tfplan"], &[]);
    assert!(!run.success);
    assert!(run.calls.is_empty());
}

#[test]
fn resources_that_do_not_change_cannot_make_the_apply_refuse() {
    // GIVEN an approved plan whose unchanged resources read back other values than a
    // plan made a minute later (refreshed attributes that move without any change)
    let project = Project::bootstrapped();
    let approved = r#"{"resource_changes": [
        {"address": "module.functions.aws_lambda_function.product_api", "change": {"actions": ["update"]}},
        {"address": "module.data.aws_dynamodb_table.this", "change": {"actions": ["no-op"], "after": {"read_at": 1}}}
    ], "output_changes": {"table_name": {"actions": ["no-op"], "after": "Products"}}}"#;
    let run = project.script(&["plan"], &[("FAKE_TF_PLAN_JSON", approved)]);
    assert!(run.success, "{}", run.stderr);
    fs::rename(
        project.path("terraform/dev.tfplan"),
        project.path("terraform/approved.tfplan"),
    )
    .unwrap();
    // WHEN Apply plans again and only the unchanged resources differ
    let run = project.script(&["apply-approved", "approved.tfplan"], &[]);
    // THEN the plans are equal in what they would do, and the plan is applied
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.applies(), ["terraform|apply -input=false dev.tfplan"]);
}

#[test]
fn the_pipeline_takes_the_zips_from_the_build_stage_artifact() {
    let project = Project::bootstrapped();
    let artifact = tempfile::tempdir().unwrap();
    for function in ["product-api", "cache-invalidator"] {
        let dir = artifact.path().join("target/lambda").join(function);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("bootstrap.zip"), function).unwrap();
    }
    let run = project.script(&["take-zips", artifact.path().to_str().unwrap()], &[]);
    assert!(run.success, "{}", run.stderr);
    for function in ["product-api", "cache-invalidator"] {
        let zip = project.path(&format!("target/lambda/{function}/bootstrap.zip"));
        assert_eq!(fs::read_to_string(zip).unwrap(), function);
    }
}

#[test]
fn outputs_come_from_the_environments_own_state() {
    let run = Project::bootstrapped().make(
        &["url", "DEPLOY_ENV=dev"],
        None,
        &[("FAKE_TF_OUTPUT_api_invoke_url", "https://api.example/prod")],
    );
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.calls,
        [STACK_INIT, "terraform|output -raw api_invoke_url"]
    );
}

#[test]
fn another_environment_reads_its_own_settings_and_state() {
    // GIVEN ENV=prod without terraform/env/prod.tfvars THEN it stops, naming the file
    let project = Project::bootstrapped();
    let run = project.make(&["plan", "DEPLOY_ENV=prod"], None, &[]);
    assert!(!run.success);
    assert!(
        run.stderr.contains("terraform/env/prod.tfvars"),
        "{}",
        run.stderr
    );
    // GIVEN prod's files THEN prod's are the ones used
    fs::copy(
        project.path("terraform/env/dev.tfvars"),
        project.path("terraform/env/prod.tfvars"),
    )
    .unwrap();
    fs::copy(
        project.path(BACKEND),
        project.path("terraform/env/prod.s3.tfbackend"),
    )
    .unwrap();
    let run = project.make(&["plan", "DEPLOY_ENV=prod"], None, &[]);
    assert!(run.success, "{}", run.stderr);
    assert!(run.calls[0].contains("-backend-config=env/prod.s3.tfbackend"));
    assert!(run.calls[1].contains("-var-file=env/prod.tfvars -var=environment=prod"));
    assert!(run.calls[1].ends_with("-out=prod.tfplan"));
}

#[test]
fn local_state_from_an_earlier_deploy_is_copied_into_the_remote_state_once() {
    // GIVEN a stack deployed with local state, before remote state existed
    let project = Project::bootstrapped();
    fs::write(
        project.path("terraform/terraform.tfstate"),
        "{\"version\": 4}",
    )
    .unwrap();
    // WHEN make deploy is answered yes twice (copy the state, apply the plan)
    let run = project.make(&["deploy"], Some("yes\nyes\n"), &[]);
    // THEN init migrates it, and the local file is set aside so it is not copied again
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.calls[0],
        "terraform|init -input=false -backend-config=env/dev.s3.tfbackend -migrate-state -force-copy"
    );
    assert!(!project.path("terraform/terraform.tfstate").exists());
    let run = project.make(&["plan"], None, &[]);
    assert_eq!(run.calls[0], STACK_INIT);
}

#[test]
fn destroy_plans_asks_and_applies_the_destroy_plan() {
    let run = Project::bootstrapped().make(&["destroy"], Some("yes\n"), &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        run.calls,
        [
            STACK_INIT.to_owned(),
            stack_plan(" -destroy"),
            "terraform|apply -input=false dev.tfplan".to_owned(),
        ]
    );
    let run = Project::bootstrapped().make(&["destroy"], None, &[]);
    assert!(!run.success);
    assert!(run.applies().is_empty());
}

#[test]
fn destroy_bootstrap_removes_the_state_bucket_only_once_the_state_is_empty() {
    // GIVEN a destroy that left resources in the state THEN the bootstrap stays
    let project = Project::bootstrapped();
    let run = project.make(
        &["destroy", "BOOTSTRAP=1"],
        Some("yes\nyes\n"),
        &[(
            "FAKE_TF_STATE_LIST",
            "module.data.aws_dynamodb_table.this\n",
        )],
    );
    assert!(!run.success);
    assert!(run.stderr.contains("aws_dynamodb_table"), "{}", run.stderr);
    assert!(
        !run.calls
            .iter()
            .any(|call| call.starts_with("terraform/bootstrap"))
    );
    assert!(project.path(BACKEND).exists());
    // GIVEN an empty state THEN the bootstrap is planned, asked for and destroyed too
    let run = project.make(&["destroy", "BOOTSTRAP=1"], Some("yes\nyes\n"), &[]);
    assert!(run.success, "{}", run.stderr);
    assert_eq!(
        &run.calls[3..],
        [
            "terraform|state list",
            "terraform/bootstrap|init -input=false -reconfigure -backend-config=path=dev.tfstate",
            "terraform/bootstrap|plan -destroy -input=false -var-file=../env/dev.tfvars -var=environment=dev -out=dev.tfplan",
            "terraform/bootstrap|apply -input=false dev.tfplan",
        ]
    );
    assert!(!project.path(BACKEND).exists());
}

// --- buildspecs ----------------------------------------------------------------------

fn buildspec(name: &str) -> Yaml {
    let text = fs::read_to_string(repo().join(name)).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
    assert_eq!(docs.len(), 1, "{name}");
    docs.remove(0)
}

fn commands(spec: &Yaml, phase: &str) -> Vec<String> {
    spec["phases"][phase]["commands"]
        .as_vec()
        .unwrap_or_else(|| panic!("no {phase} commands"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn artifact_files(spec: &Yaml) -> Vec<String> {
    spec["artifacts"]["files"]
        .as_vec()
        .map(|files| {
            files
                .iter()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_build_stage_tests_with_redis_7_and_hands_on_only_the_zips() {
    let spec = buildspec("buildspec.yml");
    assert_eq!(spec["version"].as_f64(), Some(0.2));
    let install = commands(&spec, "install").join("\n");
    assert!(
        !install.contains("redis6"),
        "Redis 6.2 cannot run SET NX GET"
    );
    assert!(install.contains("dnf install -y -q valkey"), "{install}");
    assert!(install.contains("redis-server --version"));
    // make package's check reads the zips with these (install-tools.sh names them).
    for tool in ["binutils", "file"] {
        assert!(
            install.lines().any(|line| line.starts_with("dnf install")
                && line.split_whitespace().any(|word| word == tool)),
            "{tool} is not installed: {install}"
        );
    }
    // A pinned Rust: a new stable's clippy would fail make lint on a commit that passed.
    let rust = spec["env"]["variables"]["RUST_VERSION"]
        .as_str()
        .unwrap_or_default();
    assert!(
        Regex::new(r"^1\.\d+\.\d+$").unwrap().is_match(rust),
        "RUST_VERSION {rust:?} is not a pinned release"
    );
    assert!(
        install.contains("--default-toolchain \"$RUST_VERSION\""),
        "{install}"
    );
    // install-tools.sh installs memcached with apt-get, which CodeBuild's Amazon Linux
    // does not have: without this the build stage stops at make test.
    assert!(
        install.contains("dnf install -y -q memcached") && install.contains("memcached -V"),
        "the build stage does not install memcached for the Memcached engine's tests: {install}"
    );
    // Branch code and its dependencies run here: tests and the zips, nothing of Terraform.
    assert_eq!(
        commands(&spec, "build"),
        [
            "export PATH=\"$HOME/.cargo/bin:$PATH\"",
            "make lint test package"
        ]
    );
    assert_eq!(
        artifact_files(&spec),
        [
            "target/lambda/product-api/bootstrap.zip",
            "target/lambda/cache-invalidator/bootstrap.zip"
        ]
    );
}

#[test]
fn the_plan_stage_validates_and_plans_the_source_commit_with_the_zips() {
    let spec = buildspec("buildspec-plan.yml");
    assert_eq!(
        commands(&spec, "build"),
        [
            "bash scripts/deploy.sh take-zips \"$CODEBUILD_SRC_DIR_package\"",
            "bash scripts/deploy.sh validate",
            "bash scripts/deploy.sh plan",
        ]
    );
    assert_eq!(artifact_files(&spec), ["terraform/*.tfplan"]);
}

#[test]
fn the_apply_stage_applies_only_the_approved_plan_then_smoke_tests() {
    let spec = buildspec("buildspec-apply.yml");
    assert_eq!(
        commands(&spec, "build"),
        [
            "bash scripts/deploy.sh take-zips \"$CODEBUILD_SRC_DIR_package\"",
            "cp \"$CODEBUILD_SRC_DIR_plan/terraform/$DEPLOY_ENV.tfplan\" terraform/approved.tfplan",
            "bash scripts/deploy.sh apply-approved approved.tfplan",
            "bash scripts/smoke.sh",
        ]
    );
    assert!(artifact_files(&spec).is_empty());
}

// --- Redis version ---------------------------------------------------------------------

#[test]
fn the_tools_script_refuses_a_redis_server_older_than_7() {
    // GIVEN redis-server 6.2 on PATH (Amazon Linux 2023's redis6)
    let bin = tempfile::tempdir().unwrap();
    for (name, output) in [
        (
            "redis-server",
            "Redis server v=6.2.14 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64",
        ),
        ("redis-cli", "redis-cli 6.2.14"),
    ] {
        let path = bin.path().join(name);
        fs::write(&path, format!("#!/bin/sh\necho '{output}'\n")).unwrap();
        make_executable(&path);
    }
    // WHEN the test harness installs its tools
    let output = Command::new(repo().join("scripts/install-tools.sh"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.path().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .output()
        .unwrap();
    // THEN it stops, naming the version it needs
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Redis 7.0 or later"), "{stderr}");
    assert!(stderr.contains("6.2"), "{stderr}");
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `make seed` in `project` with stand-ins for the AWS CLI (`aws_script`: its body, or
/// None: `AWS` names one that is not installed) and cargo, which records each call with
/// the credentials and settings it was run with.
fn seed_in(project: &Project, aws_script: Option<&str>, env: &[(&str, &str)]) -> (Run, String) {
    // None of the credentials the tests themselves run with (the emulator's).
    let mut env: Vec<_> = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ]
    .map(|name| (name, ""))
    .into_iter()
    .chain(env.iter().copied())
    .collect();
    match aws_script {
        Some(script) => {
            let aws = project.bin.path().join("aws");
            fs::write(&aws, format!("#!/usr/bin/env bash\n{script}\n")).unwrap();
            make_executable(&aws);
        }
        None => env.push(("AWS", "aws-not-installed")),
    }
    let seen = project.path("cargo-calls");
    let cargo = project.bin.path().join("cargo");
    fs::write(
        &cargo,
        format!(
            "#!/usr/bin/env bash\necho \"$* key=${{AWS_ACCESS_KEY_ID:-}} secret=${{AWS_SECRET_ACCESS_KEY:-}} \
             token=${{AWS_SESSION_TOKEN:-}} region=${{AWS_REGION:-}} table=${{TABLE_NAME:-}}\" >> {}\n",
            seen.display()
        ),
    )
    .unwrap();
    make_executable(&cargo);
    env.extend([
        ("FAKE_TF_OUTPUT_aws_region", "eu-west-1"),
        ("FAKE_TF_OUTPUT_table_name", "Products"),
    ]);
    let run = project.make(&["seed"], None, &env);
    (run, fs::read_to_string(seen).unwrap_or_default())
}

fn seed(aws_script: Option<&str>, env: &[(&str, &str)]) -> (Run, String) {
    seed_in(&Project::bootstrapped(), aws_script, env)
}

/// An AWS CLI v2 that resolves a profile the catalog CLI cannot read (IAM Identity
/// Center, credential_process), printing `exported` for `export-credentials`.
fn aws_exporting(exported: &str) -> String {
    format!(
        "[ \"$*\" = \"configure export-credentials --format env-no-export\" ] || exit 2\ncat <<'OUT'\n{exported}\nOUT"
    )
}

#[test]
fn seed_hands_the_catalog_cli_the_credentials_the_aws_cli_resolves() {
    // GIVEN an AWS CLI that resolves temporary credentials (a secret ending in '=', a
    // line it has no business printing), and a session token left in the environment
    let aws = aws_exporting(
        "AWS_ACCESS_KEY_ID=ASIAEXPORTED\nAWS_SECRET_ACCESS_KEY=se/cr+et==\n\
         AWS_SESSION_TOKEN=session\nAWS_CREDENTIAL_EXPIRATION=2026-12-08T03:00:00+00:00\n\
         PWNED=$(touch pwned)",
    );
    let project = Project::bootstrapped();
    // WHEN make seed runs
    let (run, cargo) = seed_in(&project, Some(&aws), &[("AWS_SESSION_TOKEN", "stale")]);
    // THEN the catalog CLI is built, then loads the sample into the stack's table with
    // exactly those credentials, which make printed nowhere
    assert!(run.success, "{}", run.stderr);
    let calls: Vec<_> = cargo.lines().collect();
    assert_eq!(calls.len(), 2, "{cargo}");
    assert!(
        calls[0].starts_with("build --release --bin catalog key= "),
        "{cargo}"
    );
    assert_eq!(
        calls[1],
        "run --release --bin catalog -- load data/products.json key=ASIAEXPORTED \
         secret=se/cr+et== token=session region=eu-west-1 table=Products"
    );
    assert!(!project.path("pwned").exists());
    for secret in ["se/cr+et==", "session"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret));
    }
}

#[test]
fn seed_drops_a_stale_session_token_when_the_aws_cli_resolves_long_term_keys() {
    // GIVEN a profile with keys (no token) and a session token left in the environment
    let aws = aws_exporting("AWS_ACCESS_KEY_ID=AKIASTATIC\nAWS_SECRET_ACCESS_KEY=sec");
    // WHEN make seed runs
    let (run, cargo) = seed(Some(&aws), &[("AWS_SESSION_TOKEN", "stale")]);
    // THEN the keys go without it (AWS would refuse the pair)
    assert!(run.success, "{}", run.stderr);
    assert!(
        cargo.contains("load data/products.json key=AKIASTATIC secret=sec token= region="),
        "{cargo}"
    );
}

#[test]
fn seed_goes_on_with_the_cli_s_own_credentials_when_the_aws_cli_exports_none() {
    // GIVEN an AWS CLI that cannot export (v1, or an ended IAM Identity Center session),
    // or none, and credentials in the environment
    let v1 = r#"echo "aws: error: argument operation: Invalid choice" >&2; exit 2"#;
    let own = [
        ("AWS_ACCESS_KEY_ID", "AKIAOWN"),
        ("AWS_SESSION_TOKEN", "own"),
    ];
    for aws in [Some(v1), None] {
        // WHEN make seed runs
        let (run, cargo) = seed(aws, &own);
        // THEN the catalog CLI runs with what it finds itself, saying so when the AWS CLI
        // failed
        assert!(run.success, "{}", run.stderr);
        assert!(
            cargo
                .contains("load data/products.json key=AKIAOWN secret= token=own region=eu-west-1"),
            "{cargo}"
        );
        assert_eq!(
            run.stderr.contains("the AWS CLI exported no credentials"),
            aws.is_some(),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn seed_stops_when_the_stack_s_outputs_cannot_be_read() {
    // GIVEN no state to read the outputs from (no make bootstrap, say)
    let (run, cargo) = seed_in(&Project::new(), None, &[]);
    // THEN make seed stops before building or loading anything, saying why
    assert!(!run.success);
    assert!(cargo.is_empty(), "{cargo}");
    assert!(
        run.stderr.contains("cannot read the stack's outputs"),
        "{}",
        run.stderr
    );
}

// --- Portability of the scripts ----------------------------------------------------------

/// Where `name` is on this process's PATH.
fn on_path(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

#[test]
fn the_package_check_names_a_missing_tool_instead_of_failing_on_it() {
    // GIVEN a machine with file and python3 but no binutils (readelf, objdump)
    let bin = tempfile::tempdir().unwrap();
    for tool in ["dirname", "python3"] {
        std::os::unix::fs::symlink(on_path(tool), bin.path().join(tool)).unwrap();
    }
    // (a stand-in: the check only asks whether it is there, and `make test` must not
    // need `file` on a fresh machine)
    let file = bin.path().join("file");
    fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    make_executable(&file);
    // WHEN make package checks the zips
    let output = Command::new(on_path("bash"))
        .arg(repo().join("scripts/check-lambda-binaries.sh"))
        .arg("messages.json")
        .env("PATH", bin.path())
        .output()
        .unwrap();
    // THEN it stops before any check, naming what is missing (without readelf the
    // symbol-table check would have passed unseen, without objdump the glibc one failed
    // with a wrong reason)
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: readelf is missing"), "{stderr}");
    assert!(stderr.contains("binutils"), "{stderr}");
}

#[test]
fn the_scripts_use_no_bash_feature_newer_than_macos_bash_3_2() {
    // Makefile's SHELL is /bin/bash, which is bash 3.2 on macOS.
    let newer = [
        "mapfile",
        "readarray",
        "declare -A",
        "local -A",
        "declare -n",
        "local -n",
        "declare -g",
        "coproc",
        "wait -n",
        ",,}",
        "^^}",
        ",}",
        "^}",
        "|&",
        "&>>",
        ";;&",
        "[[ -v",
        "$EPOCHSECONDS",
        "$EPOCHREALTIME",
    ];
    // An array that may be empty, expanded unguarded, is an "unbound variable" under
    // `set -u` before bash 4.4.
    let empty_array = Regex::new(r"(\w+)=\(\)").unwrap();
    for entry in fs::read_dir(repo().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "sh") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for name in empty_array.captures_iter(&text).map(|c| c[1].to_owned()) {
            let unguarded = format!("\"${{{name}[@]}}\"");
            let guarded = format!("+{unguarded}");
            assert_eq!(
                text.matches(&unguarded).count(),
                text.matches(&guarded).count(),
                "{}: {name} may be empty: expand it as ${{{name}[@]+\"${{{name}[@]}}\"}}",
                path.display()
            );
        }
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for feature in newer {
                assert!(
                    !line.contains(feature),
                    "{}:{}: {feature:?} needs bash 4: {line}",
                    path.display(),
                    number + 1
                );
            }
        }
    }
}
