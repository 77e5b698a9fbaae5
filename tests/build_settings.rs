//! The build settings the deployed binaries depend on for speed, read from `Cargo.toml` and
//! `.cargo/config.toml` (which `cargo lambda build` reads too): a test build uses the dev
//! profile, so it cannot see how the release build compiles AWS-LC.

use toml_edit::{DocumentMut, Item};

/// Whether aws-lc-sys builds its size-optimized variant in the release profile: it does
/// when its opt-level there is "s" or "z", unless `AWS_LC_SYS_SMALL` says otherwise
/// (aws-lc-sys's README, "size-optimized builds").
fn release_aws_lc_is_small(cargo_toml: &str, cargo_config: &str) -> bool {
    let manifest: DocumentMut = cargo_toml.parse().expect("Cargo.toml parses");
    let config: DocumentMut = cargo_config.parse().expect(".cargo/config.toml parses");
    // aws-lc-sys reads the target-specific name first.
    let setting = [
        "AWS_LC_SYS_SMALL_x86_64_unknown_linux_gnu",
        "AWS_LC_SYS_SMALL",
    ]
    .into_iter()
    .find_map(|name| lookup(config.as_item(), &["env", name]).and_then(env_value));
    match setting.as_deref() {
        Some("0") => return false,
        Some("1") => return true,
        _ => {}
    }
    let release = ["profile", "release"];
    let opt_level = [
        &[&release[..], &["package", "aws-lc-sys", "opt-level"]].concat(),
        &[&release[..], &["package", "*", "opt-level"]].concat(),
        &[&release[..], &["opt-level"]].concat(),
    ]
    .into_iter()
    .find_map(|path| lookup(manifest.as_item(), path))
    .and_then(Item::as_str);
    matches!(opt_level, Some("s" | "z"))
}

/// The item at `path` (table keys), if every key is there.
fn lookup<'a>(item: &'a Item, path: &[&str]) -> Option<&'a Item> {
    path.iter().try_fold(item, |item, key| item.get(key))
}

/// An `[env]` entry's value: a string, or a table with `value`.
fn env_value(item: &Item) -> Option<String> {
    // A `relative` value becomes a path, which aws-lc-sys does not read as a switch.
    if item.get("relative").and_then(Item::as_bool) == Some(true) {
        return None;
    }
    item.as_str()
        .or_else(|| item.get("value").and_then(Item::as_str))
        .map(str::to_owned)
}

#[test]
fn the_release_build_keeps_aws_lc_s_fast_elliptic_curves() {
    // GIVEN the project's own manifest and cargo configuration
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let config = std::fs::read_to_string(format!("{root}/.cargo/config.toml")).unwrap();
    // THEN the release build of AWS-LC is not its size-optimized one: that one runs
    // P-256 2-3x slower, on every TLS handshake of a cold start (docs/BENCHMARKS.md)
    assert!(
        !release_aws_lc_is_small(&manifest, &config),
        "the release profile builds aws-lc-sys for size: set AWS_LC_SYS_SMALL = \"0\" in .cargo/config.toml [env]"
    );
}

/// The strip setting cargo gives the binaries' package in the release profile: its own
/// override's, else the default ("debuginfo") when an override exists at all (cargo does
/// not fall back to `[profile.release]` then), else the profile's.
fn release_strip_of_the_binaries(cargo_toml: &str) -> String {
    let manifest: DocumentMut = cargo_toml.parse().expect("Cargo.toml parses");
    let package = ["profile", "release", "package", "product-catalog"];
    match lookup(manifest.as_item(), &package) {
        Some(overrides) => overrides
            .get("strip")
            .and_then(Item::as_str)
            .unwrap_or("debuginfo"),
        None => lookup(manifest.as_item(), &["profile", "release", "strip"])
            .and_then(Item::as_str)
            .unwrap_or("debuginfo"),
    }
    .to_owned()
}

#[test]
fn the_release_binaries_ship_without_their_symbol_table() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    assert_eq!(release_strip_of_the_binaries(&manifest), "symbols");
    // (the rule it encodes: an override without strip is "debuginfo", whatever the profile)
    let without = "[profile.release]\nstrip = \"symbols\"\n[profile.release.package.product-catalog]\nopt-level = 3\n";
    assert_eq!(release_strip_of_the_binaries(without), "debuginfo");
}

#[test]
fn a_size_profile_without_the_override_is_seen_as_small() {
    let manifest = "[profile.release.package.\"*\"]\nopt-level = \"s\"\n";
    assert!(release_aws_lc_is_small(manifest, "[env]\n"));
    assert!(release_aws_lc_is_small(
        manifest,
        "[env]\nAWS_LC_SYS_SMALL = { value = \"1\" }\n"
    ));
    assert!(!release_aws_lc_is_small(
        manifest,
        "[env]\nAWS_LC_SYS_SMALL = \"0\"\n"
    ));
    // An opt-level of its own for aws-lc-sys wins over the wildcard.
    let fast = format!("{manifest}[profile.release.package.aws-lc-sys]\nopt-level = 3\n");
    assert!(!release_aws_lc_is_small(&fast, ""));
    assert!(!release_aws_lc_is_small("[package]\nname = \"x\"\n", ""));
    // The target-specific name wins; a `relative` value is no switch.
    assert!(release_aws_lc_is_small(
        manifest,
        "[env]\nAWS_LC_SYS_SMALL = \"0\"\nAWS_LC_SYS_SMALL_x86_64_unknown_linux_gnu = \"1\"\n"
    ));
    assert!(release_aws_lc_is_small(
        manifest,
        "[env]\nAWS_LC_SYS_SMALL = { value = \"0\", relative = true }\n"
    ));
}

/// A build of the zips as `scripts/check-aws-lc-build.sh` reads it: cargo's JSON messages
/// naming aws-lc-sys's build directories, each with the build script's `output`.
struct PackageBuild {
    dir: tempfile::TempDir,
    messages: Vec<String>,
}

/// What aws-lc-sys 0.47's build script printed for this project's release build (the
/// lines the check reads, from a real `make package`).
const FAST_BUILD_OUTPUT: &str = "\
cargo:rerun-if-env-changed=AWS_LC_SYS_SMALL_x86_64_unknown_linux_gnu
cargo:rerun-if-env-changed=AWS_LC_SYS_SMALL
cargo:warning=Environment Variable found 'AWS_LC_SYS_SMALL': '0'
cargo:warning=Value: 0 is false.
cargo:rerun-if-env-changed=AWS_LC_SYS_NO_JITTER_ENTROPY_x86_64_unknown_linux_gnu
cargo:rerun-if-env-changed=AWS_LC_SYS_NO_JITTER_ENTROPY
cargo:warning=Environment Variable found 'AWS_LC_SYS_NO_JITTER_ENTROPY': '1'
cargo:warning=Value: 1 is true.
cargo:rustc-link-lib=static=aws_lc_0_47_0_crypto
";

impl PackageBuild {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            messages: vec![
                r#"{"reason":"compiler-artifact","package_id":"path+file:///p#product-catalog@0.1.0"}"#
                    .to_owned(),
                "Compiling is not JSON".to_owned(),
            ],
        }
    }

    /// aws-lc-sys's build script ran in `name` and printed `output`.
    fn aws_lc_sys(mut self, name: &str, output: &str) -> Self {
        let build = self.dir.path().join(name);
        std::fs::create_dir_all(build.join("out")).unwrap();
        std::fs::write(build.join("output"), output).unwrap();
        self.messages.push(format!(
            r#"{{"reason":"build-script-executed","package_id":"registry+index#aws-lc-sys@0.47.0","out_dir":"{}"}}"#,
            build.join("out").display()
        ));
        self
    }

    /// The check's verdict: `Ok(stdout)` or `Err(stderr)`.
    fn check(&self) -> Result<String, String> {
        let messages = self.dir.path().join("messages.json");
        std::fs::write(&messages, self.messages.join("\n")).unwrap();
        let run = std::process::Command::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-aws-lc-build.sh"),
        )
        .arg(&messages)
        .output()
        .unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        if run.status.success() {
            Ok(text(&run.stdout))
        } else {
            Err(text(&run.stderr))
        }
    }
}

/// The jitter lines of [`FAST_BUILD_OUTPUT`].
const JITTER_OFF: &str = "cargo:warning=Environment Variable found 'AWS_LC_SYS_NO_JITTER_ENTROPY': '1'\n\
                          cargo:warning=Value: 1 is true.\n";

#[test]
fn the_package_check_passes_the_build_config_toml_asks_for() {
    // GIVEN the real output's lines, and the target-specific name set to 1 over a
    // generic 0 (aws-lc-sys takes the first it finds)
    let target_specific = FAST_BUILD_OUTPUT.replace(
        JITTER_OFF,
        "cargo:warning=Environment Variable found \
         'AWS_LC_SYS_NO_JITTER_ENTROPY_x86_64_unknown_linux_gnu': 'yes'\n\
         cargo:rerun-if-env-changed=AWS_LC_SYS_NO_JITTER_ENTROPY\n\
         cargo:warning=Environment Variable found 'AWS_LC_SYS_NO_JITTER_ENTROPY': '0'\n\
         cargo:warning=Value: yes is true.\n",
    );
    assert_ne!(target_specific, FAST_BUILD_OUTPUT);
    for output in [FAST_BUILD_OUTPUT, &target_specific] {
        let verdict = PackageBuild::new()
            .aws_lc_sys("aws-lc-sys-1", output)
            .check();
        assert!(
            verdict
                .as_ref()
                .is_ok_and(|out| out.contains("not size-optimized")),
            "{output}: {verdict:?}"
        );
    }
}

#[test]
fn the_package_check_refuses_a_build_an_environment_variable_changed() {
    let cases = [
        (
            "a shell's AWS_LC_SYS_SMALL=1 over .cargo/config.toml's 0",
            FAST_BUILD_OUTPUT.replace(
                "'AWS_LC_SYS_SMALL': '0'\ncargo:warning=Value: 0 is false.",
                "'AWS_LC_SYS_SMALL': '1'\ncargo:warning=Value: 1 is true.\n\
                 cargo:warning=Size-optimized AWS-LC build enabled. \
                 Applying OPENSSL_SMALL and disabling AVX-512 assembly.",
            ),
            "AWS_LC_SYS_SMALL",
        ),
        (
            // however aws-lc-sys words its notice, its verdict on the variable decides
            "AWS_LC_SYS_SMALL=1 without the size-optimized notice",
            FAST_BUILD_OUTPUT.replace(
                "'AWS_LC_SYS_SMALL': '0'\ncargo:warning=Value: 0 is false.",
                "'AWS_LC_SYS_SMALL': '1'\ncargo:warning=Value: 1 is true.",
            ),
            "AWS_LC_SYS_SMALL",
        ),
        (
            // aws-lc-sys prints both names and takes the first
            "the target-specific jitter variable set to 0 over the generic 1",
            FAST_BUILD_OUTPUT.replace(
                JITTER_OFF,
                "cargo:warning=Environment Variable found \
                 'AWS_LC_SYS_NO_JITTER_ENTROPY_x86_64_unknown_linux_gnu': '0'\n\
                 cargo:rerun-if-env-changed=AWS_LC_SYS_NO_JITTER_ENTROPY\n\
                 cargo:warning=Environment Variable found 'AWS_LC_SYS_NO_JITTER_ENTROPY': '1'\n\
                 cargo:warning=Value: 0 is false.\n",
            ),
            "Jitter Entropy",
        ),
        (
            // aws-lc-sys reads it as no setting, and builds jitter in
            "a jitter value aws-lc-sys cannot read, which says 'is true'",
            FAST_BUILD_OUTPUT.replace(
                JITTER_OFF,
                "cargo:warning=Environment Variable found \
                 'AWS_LC_SYS_NO_JITTER_ENTROPY': 'this is true'\n",
            ),
            "Jitter Entropy",
        ),
        (
            "no jitter variable at all (an environment that emptied cargo's [env])",
            FAST_BUILD_OUTPUT.replace(JITTER_OFF, ""),
            "Jitter Entropy",
        ),
        (
            "a system AWS-LC taken instead of one compiled here",
            FAST_BUILD_OUTPUT.replace(
                "cargo:rustc-link-lib=static=aws_lc_0_47_0_crypto\n",
                "cargo:rustc-link-lib=crypto\n",
            ),
            "did not link",
        ),
    ];
    for (given, output, named) in cases {
        assert_ne!(
            output, FAST_BUILD_OUTPUT,
            "{given}: the case changes nothing"
        );
        let verdict = PackageBuild::new()
            .aws_lc_sys("aws-lc-sys-1", &output)
            .check();
        assert!(
            verdict.as_ref().is_err_and(|err| err.contains(named)),
            "{given}: {verdict:?}"
        );
    }
}

#[test]
fn the_package_check_reads_only_the_build_cargo_names() {
    // GIVEN the build cargo names, and beside it a size-optimized one of other settings,
    // written later (the newest directory is not the one in the zips)
    let build = PackageBuild::new().aws_lc_sys("aws-lc-sys-2", FAST_BUILD_OUTPUT);
    let stale = build.dir.path().join("aws-lc-sys-1");
    std::fs::create_dir_all(stale.join("out")).unwrap();
    std::fs::write(
        stale.join("output"),
        "cargo:warning=Size-optimized AWS-LC build enabled.\n",
    )
    .unwrap();
    // THEN only the one cargo's messages name is read
    let verdict = build.check();
    assert!(verdict.is_ok(), "{verdict:?}");
    // AND no build named, or two, is an error, not a pass
    let verdict = PackageBuild::new().check();
    assert!(
        verdict.as_ref().is_err_and(|err| err.contains("0 builds")),
        "{verdict:?}"
    );
    let verdict = PackageBuild::new()
        .aws_lc_sys("aws-lc-sys-1", FAST_BUILD_OUTPUT)
        .aws_lc_sys("aws-lc-sys-2", FAST_BUILD_OUTPUT)
        .check();
    assert!(
        verdict.as_ref().is_err_and(|err| err.contains("2 builds")),
        "{verdict:?}"
    );
}
