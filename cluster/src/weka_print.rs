//! What `weka fs` and `weka security kms` print, as WEKA prints them: a table under
//! column headers in capitals (`FILESYSTEM NAME`, `GROUP`, ...), chosen with `-o/--output`,
//! rows kept with `--filter k=v`, the header dropped with `--no-header`; or, with `--json`,
//! one object per filesystem under WEKA's REST field names. Booleans print as `True` /
//! `False`, capacities in decimal units (`10.74 GB`, `1.10 TB`). No secret is ever
//! printed: a summary carries none (the role-id is an identifier, the secret-id never
//! leaves the config table).

use serde_json::{json, Value};

use crate::admin::{FsSummary, KmsSummary};

/// The group every filesystem is in: the model has one filesystem group.
pub const FS_GROUP: &str = "default";

/// A column of `weka fs`, by WEKA's column id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsColumn {
    Name,
    Group,
    AvailableTotal,
    Status,
    Encrypted,
    KmsKey,
    KmsNamespace,
    KmsRole,
}

impl FsColumn {
    const ALL: [FsColumn; 8] = [
        FsColumn::Name,
        FsColumn::Group,
        FsColumn::AvailableTotal,
        FsColumn::Status,
        FsColumn::Encrypted,
        FsColumn::KmsKey,
        FsColumn::KmsNamespace,
        FsColumn::KmsRole,
    ];

    /// WEKA's column ids that the model has no data for (usage, SSD tiering, mount
    /// authentication), so that asking for one is refused by name rather than as a typo.
    const UNMODELLED: [&'static str; 4] = ["usedSSD", "availableSSD", "usedTotal", "authRequired"];

    /// The columns `weka fs` prints without `-o`.
    pub const DEFAULT: [FsColumn; 5] = [
        FsColumn::Name,
        FsColumn::Group,
        FsColumn::AvailableTotal,
        FsColumn::Status,
        FsColumn::Encrypted,
    ];

    /// WEKA's id for the column (`-o`, `--filter`).
    pub fn id(self) -> &'static str {
        match self {
            FsColumn::Name => "name",
            FsColumn::Group => "group",
            FsColumn::AvailableTotal => "availableTotal",
            FsColumn::Status => "status",
            FsColumn::Encrypted => "encrypted",
            FsColumn::KmsKey => "kmsKey",
            FsColumn::KmsNamespace => "kmsNamespace",
            FsColumn::KmsRole => "kmsRole",
        }
    }

    /// The column's header.
    pub fn header(self) -> &'static str {
        match self {
            FsColumn::Name => "FILESYSTEM NAME",
            FsColumn::Group => "GROUP",
            FsColumn::AvailableTotal => "AVAILABLE TOTAL",
            FsColumn::Status => "STATUS",
            FsColumn::Encrypted => "ENCRYPTED",
            FsColumn::KmsKey => "KMS KEY",
            FsColumn::KmsNamespace => "KMS NAMESPACE",
            FsColumn::KmsRole => "KMS ROLE",
        }
    }

    /// The column with WEKA's id `id`; the error names the known ones.
    pub fn parse(id: &str) -> Result<FsColumn, String> {
        if let Some(column) = FsColumn::ALL.into_iter().find(|c| c.id() == id) {
            return Ok(column);
        }
        if FsColumn::UNMODELLED.contains(&id) {
            return Err(format!(
                "column {id:?} is a WEKA column this model has no data for"
            ));
        }
        let known: Vec<&str> = FsColumn::ALL.iter().map(|c| c.id()).collect();
        Err(format!(
            "unknown column {id:?}: known are {}",
            known.join(", ")
        ))
    }

    /// The cell of `fs` in this column, as the table prints it.
    fn cell(self, fs: &FsSummary, kms: Option<&KmsSummary>) -> String {
        let own_kms = |value: Option<&str>| {
            if fs.encrypted {
                value.unwrap_or_default().to_string()
            } else {
                String::new()
            }
        };
        match self {
            FsColumn::Name => fs.name.clone(),
            FsColumn::Group => FS_GROUP.into(),
            FsColumn::AvailableTotal => decimal_capacity(fs.capacity_gib),
            FsColumn::Status => fs.status.clone(),
            FsColumn::Encrypted => python_bool(fs.encrypted).into(),
            FsColumn::KmsKey => own_kms(fs.kms_key.as_deref()),
            FsColumn::KmsNamespace => own_kms(kms.and_then(|k| k.namespace.as_deref())),
            FsColumn::KmsRole => own_kms(kms.and_then(|k| k.role_id.as_deref())),
        }
    }
}

/// How `weka fs` prints: its `-o`, `--filter`, `--no-header` and `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsView {
    pub columns: Vec<FsColumn>,
    /// Rows kept: those whose cell in the column equals the value (`True` and `true`
    /// alike). Every filter must hold.
    pub filters: Vec<(FsColumn, String)>,
    pub header: bool,
    pub json: bool,
}

impl Default for FsView {
    fn default() -> Self {
        FsView {
            columns: FsColumn::DEFAULT.to_vec(),
            filters: Vec::new(),
            header: true,
            json: false,
        }
    }
}

impl FsView {
    /// `weka fs`'s output for `filesystems`, under the cluster's KMS `kms`.
    pub fn print(&self, filesystems: &[FsSummary], kms: Option<&KmsSummary>) -> String {
        let rows: Vec<&FsSummary> = filesystems
            .iter()
            .filter(|fs| {
                self.filters
                    .iter()
                    .all(|(column, value)| column.cell(fs, kms).eq_ignore_ascii_case(value))
            })
            .collect();
        if self.json {
            let objects: Vec<Value> = rows.iter().map(|fs| fs_json(fs, kms)).collect();
            return serde_json::to_string_pretty(&objects).unwrap_or_default() + "\n";
        }
        let mut lines: Vec<Vec<String>> = Vec::new();
        if self.header {
            lines.push(
                self.columns
                    .iter()
                    .map(|c| c.header().to_string())
                    .collect(),
            );
        }
        for fs in rows {
            lines.push(self.columns.iter().map(|c| c.cell(fs, kms)).collect());
        }
        table(&lines)
    }
}

/// Rows of cells, each column as wide as its widest cell, joined by ` | `.
fn table(lines: &[Vec<String>]) -> String {
    let width = |i: usize| {
        lines
            .iter()
            .map(|l| l[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..lines.first().map_or(0, Vec::len)).map(width).collect();
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
    }
    out
}

/// One filesystem under WEKA's REST field names.
fn fs_json(fs: &FsSummary, kms: Option<&KmsSummary>) -> Value {
    let on_kms = |v: Option<&str>| {
        if fs.encrypted {
            v.map(str::to_string)
        } else {
            None
        }
    };
    json!({
        "name": fs.name,
        "group_name": FS_GROUP,
        "available_total": fs.capacity_gib << 30,
        "status": fs.status,
        "is_encrypted": fs.encrypted,
        "kms_key_identifier": on_kms(fs.kms_key.as_deref()),
        "kms_namespace": on_kms(kms.and_then(|k| k.namespace.as_deref())),
        "kms_role": on_kms(kms.and_then(|k| k.role_id.as_deref())),
    })
}

/// `weka security kms`: the configured KMS, or that there is none.
pub fn kms_text(kms: Option<&KmsSummary>) -> String {
    let Some(kms) = kms else {
        return "No KMS is configured. Encrypted filesystems are supported with a local \
                encryption key.\n"
            .into();
    };
    let mut lines = vec![format!("Type: {}", kms.kind)];
    if kms.kind == "kmip" {
        lines.push(format!("Address: {}", kms.address));
        lines.push(format!("Key UID: {}", kms.key));
    } else {
        lines.push(format!("URL: {}", kms.address));
        lines.push(format!("Key name: {}", kms.key));
        lines.push(format!("Auth method: {}", kms.auth_method));
        if let Some(ns) = &kms.namespace {
            lines.push(format!("Namespace: {ns}"));
        }
    }
    lines.join("\n") + "\n"
}

/// A capacity in GiB in decimal units with two decimals, as WEKA prints capacities.
pub fn decimal_capacity(gib: u64) -> String {
    let bytes = (gib as f64) * f64::from(1u32 << 30);
    let (value, unit) = if bytes >= 1e12 {
        (bytes / 1e12, "TB")
    } else {
        (bytes / 1e9, "GB")
    };
    format!("{value:.2} {unit}")
}

fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(name: &str, encrypted: bool, kms_key: Option<&str>) -> FsSummary {
        FsSummary {
            name: name.into(),
            status: "READY".into(),
            encrypted,
            kms_key: kms_key.map(str::to_string),
            key_version: encrypted.then_some(1),
            capacity_gib: 1,
        }
    }

    fn vault() -> KmsSummary {
        KmsSummary {
            kind: "vault".into(),
            address: "http://vault:8200".into(),
            key: "weka-key".into(),
            auth_method: "RoleId/SecretId".into(),
            namespace: None,
            role_id: Some("weka-role".into()),
        }
    }

    #[test]
    fn the_docs_example_prints_as_weka_prints_it() {
        let view = FsView {
            columns: ["name", "group", "availableTotal", "status", "encrypted"]
                .iter()
                .map(|c| FsColumn::parse(c).unwrap())
                .collect(),
            filters: vec![(FsColumn::Encrypted, "True".into())],
            ..FsView::default()
        };
        let all = [
            fs("test-encrypt", true, Some("weka-key")),
            fs("plain", false, None),
        ];
        assert_eq!(
            view.print(&all, Some(&vault())),
            "FILESYSTEM NAME | GROUP   | AVAILABLE TOTAL | STATUS | ENCRYPTED\n\
             test-encrypt    | default | 1.07 GB         | READY  | True\n"
        );
        let bare = FsView {
            header: false,
            ..view.clone()
        };
        assert_eq!(
            bare.print(&all, Some(&vault())),
            "test-encrypt | default | 1.07 GB | READY | True\n"
        );
    }

    #[test]
    fn kms_columns_and_json_never_hold_a_secret() {
        let all = [fs("t1", true, Some("tenant-key")), fs("plain", false, None)];
        let view = FsView {
            columns: vec![FsColumn::Name, FsColumn::KmsKey, FsColumn::KmsRole],
            ..FsView::default()
        };
        let text = view.print(&all, Some(&vault()));
        assert_eq!(
            text,
            "FILESYSTEM NAME | KMS KEY    | KMS ROLE\n\
             t1              | tenant-key | weka-role\n\
             plain           |            |\n"
        );
        let json = FsView {
            json: true,
            ..FsView::default()
        }
        .print(&all, Some(&vault()));
        let parsed: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed[0]["kms_key_identifier"], "tenant-key");
        assert_eq!(parsed[0]["kms_role"], "weka-role");
        assert_eq!(parsed[1]["is_encrypted"], false);
        assert_eq!(parsed[1]["kms_role"], Value::Null);
        assert!(!json.contains("secret"), "{json}");
    }

    #[test]
    fn columns_are_refused_by_name() {
        assert!(FsColumn::parse("usedSSD")
            .unwrap_err()
            .contains("no data for"));
        let err = FsColumn::parse("nmae").unwrap_err();
        assert!(err.contains("unknown column \"nmae\"") && err.contains("availableTotal"));
    }

    #[test]
    fn kms_text_for_each_state() {
        assert!(kms_text(None).starts_with("No KMS is configured"));
        assert_eq!(
            kms_text(Some(&vault())),
            "Type: vault\nURL: http://vault:8200\nKey name: weka-key\nAuth method: RoleId/SecretId\n"
        );
    }

    #[test]
    fn capacities_in_decimal_units() {
        assert_eq!(decimal_capacity(1), "1.07 GB");
        assert_eq!(decimal_capacity(10), "10.74 GB");
        assert_eq!(decimal_capacity(1024), "1.10 TB");
    }
}
