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
