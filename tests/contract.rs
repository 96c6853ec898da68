//! The project's copy of the schema (`proto/user_events.proto`) must stay
//! wire-compatible with the user service's contract
//! (`../shared/contract/user_events.proto`, or `USER_PURGE_CONTRACT`): same
//! package, messages, field numbers, types and enum values. Comments and
//! options may differ.

use std::path::{Path, PathBuf};

use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};

fn contract_path() -> PathBuf {
    match std::env::var_os("USER_PURGE_CONTRACT") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/contract/user_events.proto"),
    }
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

#[test]
fn the_local_schema_matches_the_contract() {
    let contract = contract_path();
    assert!(
        contract.exists(),
        "the contract is not at {}; set USER_PURGE_CONTRACT to its path",
        contract.display()
    );
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/user_events.proto");
    let ours = wire_shape(&descriptor(&local));
    let theirs = wire_shape(&descriptor(&contract));
    assert!(ours.len() > 5, "the schema was not read: {ours:?}");
    assert_eq!(ours, theirs);
}
