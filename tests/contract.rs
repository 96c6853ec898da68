//! The project's copy of the schema (`proto/user_events.proto`) must stay
//! wire-compatible with the user service's contract: same package, messages,
//! field numbers, types and enum values. Comments and options may differ.
//!
//! The contract is a snapshot kept in the repository
//! (`tests/fixtures/user_events.proto`), so the test passes wherever the
//! repository is cloned. `USER_PURGE_CONTRACT` names the user service's
//! current file, to compare against that too (and to refresh the snapshot);
//! `.ci/run` sets it when that file is checked out beside the repository
//! (`../shared/contract/user_events.proto`).

use std::path::{Path, PathBuf};

use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};

fn in_repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Parses one .proto file and returns its own descriptor (not its imports').
fn descriptor(path: &Path) -> FileDescriptorProto {
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let set = protox::compile([name], [dir]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    set.file.into_iter().find(|f| f.name() == name).unwrap()
}

/// What the wire format depends on, as comparable text, one line per item.
fn wire_shape(file: &FileDescriptorProto) -> Vec<String> {
    fn enums(prefix: &str, list: &[EnumDescriptorProto], out: &mut Vec<String>) {
        for e in list {
            for v in &e.value {
                out.push(format!(
                    "enum {prefix}.{} {} = {}",
                    e.name(),
                    v.name(),
                    v.number()
                ));
            }
        }
    }
    fn messages(prefix: &str, list: &[DescriptorProto], out: &mut Vec<String>) {
        for m in list {
            let name = format!("{prefix}.{}", m.name());
            for f in &m.field {
                out.push(format!(
                    "field {name}.{} #{} {:?} {:?} {}",
                    f.name(),
                    f.number(),
                    f.r#type(),
                    f.label(),
                    f.type_name()
                ));
            }
            enums(&name, &m.enum_type, out);
            messages(&name, &m.nested_type, out);
        }
    }
    let mut out = vec![format!("package {}", file.package())];
    messages(file.package(), &file.message_type, &mut out);
    enums(file.package(), &file.enum_type, &mut out);
    out.sort();
    out
}

fn ours() -> Vec<String> {
    let ours = wire_shape(&descriptor(&in_repo("proto/user_events.proto")));
    assert!(ours.len() > 5, "the schema was not read: {ours:?}");
    ours
}

#[test]
fn the_local_schema_matches_the_contract_snapshot() {
    let snapshot = wire_shape(&descriptor(&in_repo("tests/fixtures/user_events.proto")));
    assert_eq!(ours(), snapshot);
}

#[test]
fn the_local_schema_matches_the_upstream_contract_when_named() {
    let Some(upstream) = std::env::var_os("USER_PURGE_CONTRACT").filter(|p| !p.is_empty()) else {
        println!("USER_PURGE_CONTRACT is not set: compared with the snapshot only");
        return;
    };
    let upstream = PathBuf::from(upstream);
    assert!(
        upstream.is_file(),
        "USER_PURGE_CONTRACT names {}, which is not a file",
        upstream.display()
    );
    assert_eq!(ours(), wire_shape(&descriptor(&upstream)));
}

#[test]
fn a_change_of_field_number_is_caught() {
    // The comparison itself must be able to fail: renumber user_id in a copy.
    let dir = std::env::temp_dir().join(format!("user-purge-contract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read_to_string(in_repo("proto/user_events.proto")).unwrap();
    let changed = original.replacen("user_id = 2", "user_id = 9", 1);
    assert_ne!(original, changed, "the schema no longer has `user_id = 2`");
    let copy = dir.join("user_events.proto");
    std::fs::write(&copy, changed).unwrap();
    let theirs = wire_shape(&descriptor(&copy));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_ne!(ours(), theirs);
}
