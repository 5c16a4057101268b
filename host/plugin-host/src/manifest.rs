//! The plugin manifest: JSON in a `halo-manifest` custom section of the component (the SDK's
//! `manifest!` writes it inside the core module; [`pack`] appends one to any component, e.g. a
//! Python one). Read before compiling; validated here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmtime::wasmparser::{Parser, Payload};

/// Custom section name.
pub const SECTION: &str = "halo-manifest";
/// WIT versions this host loads.
pub const SUPPORTED_APIS: &[&str] =
    &["halo:plugin@0.1.0", "halo:plugin@0.1.1", "halo:plugin@0.1.2", "halo:plugin@0.1.3", "halo:plugin@0.1.4"];
/// Versions whose `federation-adapter` world is the frozen 0.1.3 one (0.1.4 added cases to
/// its `input` and `action` variants, so these bind through the 0.1.3 definitions).
pub const LEGACY_FED_APIS: &[&str] = &["halo:plugin@0.1.2", "halo:plugin@0.1.3"];
/// Plugin kinds (worlds) this host runs.
pub const KINDS: &[&str] = &["presence-states", "archive-sink", "federation-adapter"];
/// Capabilities a plugin may ask for (beyond `log` and `config`, which every plugin has).
pub const CAPABILITIES: &[&str] = &["kv", "dir", "http", "net", "listen", "dns"];
/// Longest manifest description, bytes.
pub const MAX_DESCRIPTION: usize = 4096;
/// Most config keys a manifest may declare.
pub const MAX_CONFIG_KEYS: usize = 256;
/// Longest text of one config key's description, bytes.
pub const MAX_FIELD_DESCRIPTION: usize = 1024;
/// Longest manifest section, bytes (well above what the limits above allow).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// The capabilities a plugin of `kind` may ask for and be granted: a presence plugin computes
/// a state from its inputs and keeps private data (`kv`); an archive sink stores records in a
/// directory or sends them to one HTTP host; a federation adapter has the host open its
/// connections (`net`).
pub fn allowed_capabilities(kind: &str) -> &'static [&'static str] {
    match kind {
        "presence-states" => &["kv"],
        "archive-sink" => &["kv", "dir", "http"],
        "federation-adapter" => &["kv", "net", "listen", "dns"],
        _ => &[],
    }
}

/// Why a component was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not a WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// No manifest section.
    #[error(
        "the component has no `halo-manifest` section: build it with halo-sdk's manifest! macro, or add one with `halo plugin pack`"
    )]
    Missing,
    /// The manifest is not valid JSON of the expected shape.
    #[error("invalid manifest: {0}")]
    Malformed(String),
    /// A field's value is wrong.
    #[error("invalid manifest: {0}")]
    Field(String),
    /// Built against a WIT version this host does not load.
    #[error("the plugin was built against {found}; this Halo loads {}: rebuild it with a matching halo-sdk", SUPPORTED_APIS.join(", "))]
    Api {
        /// The version in the manifest.
        found: String,
    },
}

/// The type of a config value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Any text.
    String,
    /// A signed integer.
    Integer,
    /// `true` or `false`.
    Boolean,
}

/// One key of the config schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigField {
    /// Value type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Default value.
    #[serde(default)]
    pub default: Option<String>,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Must be set (no default).
    #[serde(default)]
    pub required: bool,
    /// Write-only: a password, a shared secret. The host never shows its value (CLI, REST,
    /// console, logs show [`SECRET_MASK`]), and a config written back with the mask keeps it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// What is shown instead of a secret config value.
pub const SECRET_MASK: &str = "********";

/// Whether config key `key` holds a secret: marked so in `schema`, or, for plugins whose
/// manifest says nothing (or is unknown), named like one (`secret`, `password`, `token`).
pub fn is_secret(schema: Option<&BTreeMap<String, ConfigField>>, key: &str) -> bool {
    let named = ["secret", "password", "token"].iter().any(|w| key.to_ascii_lowercase().contains(w));
    named || schema.and_then(|s| s.get(key)).is_some_and(|f| f.secret)
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique name: a-z, 0-9, `-`.
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// The world it implements: `presence-states` or `archive-sink`.
    pub kind: String,
    /// The WIT package version it was built against, e.g. `halo:plugin@0.1.0`.
    pub api: String,
    /// One line for admins.
    #[serde(default)]
    pub description: String,
    /// Capabilities it asks for (`kv`, `dir`, `http`).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Config schema.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigField>,
}

fn custom_sections(bytes: &[u8]) -> Result<Vec<Vec<u8>>, ManifestError> {
    let mut out = Vec::new();
    let mut saw_component = false;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| ManifestError::Invalid(e.to_string()))? {
            Payload::Version { encoding: wasmtime::wasmparser::Encoding::Component, .. } => saw_component = true,
            Payload::CustomSection(r) if r.name() == SECTION => out.push(r.data().to_vec()),
            _ => {}
        }
    }
    if !saw_component {
        return Err(ManifestError::Invalid("this is a core module, not a component (build for wasm32-wasip2)".into()));
    }
    Ok(out)
}

impl Manifest {
    /// Reads and validates the manifest of component `bytes`. A component with more than one
    /// `halo-manifest` section (say one from the SDK and one appended by [`pack`]) is refused
    /// as ambiguous.
    pub fn read(bytes: &[u8]) -> Result<Self, ManifestError> {
        let sections = custom_sections(bytes)?;
        let raw = match sections.as_slice() {
            [] => return Err(ManifestError::Missing),
            [one] => one,
            more => {
                return Err(ManifestError::Field(format!(
                    "the component has {} `halo-manifest` sections; it must have exactly one \
                     (pack a component built without the SDK's manifest! macro, or rebuild it)",
                    more.len()
                )));
            }
        };
        if raw.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Field(format!(
                "the manifest is {} bytes; the limit is {MAX_MANIFEST_BYTES}",
                raw.len()
            )));
        }
        let m: Manifest = serde_json::from_slice(raw).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.version.is_empty() || self.version.len() > 64 {
            return Err(ManifestError::Field("version: 1-64 characters".into()));
        }
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            return Err(ManifestError::Field(format!("name {:?}: use 1-64 characters a-z, 0-9, -", self.name)));
        }
        if !SUPPORTED_APIS.contains(&self.api.as_str()) {
            return Err(ManifestError::Api { found: self.api.clone() });
        }
        if !KINDS.contains(&self.kind.as_str()) {
            return Err(ManifestError::Field(format!("kind {:?}: this Halo runs {}", self.kind, KINDS.join(", "))));
        }
        if self.kind == "archive-sink" && self.api == "halo:plugin@0.1.0" {
            return Err(ManifestError::Field(
                "the archive-sink world arrived in halo:plugin@0.1.1; build against it".into(),
            ));
        }
        if self.kind == "federation-adapter"
            && !matches!(self.api.as_str(), "halo:plugin@0.1.2" | "halo:plugin@0.1.3" | "halo:plugin@0.1.4")
        {
            return Err(ManifestError::Field(
                "the federation-adapter world arrived in halo:plugin@0.1.2; build against it".into(),
            ));
        }
        if let Some(c) = self.capabilities.iter().find(|c| !CAPABILITIES.contains(&c.as_str())) {
            return Err(ManifestError::Field(format!("unknown capability {c:?}; known: {}", CAPABILITIES.join(", "))));
        }
        let allowed = allowed_capabilities(&self.kind);
        if let Some(c) = self.capabilities.iter().find(|c| !allowed.contains(&c.as_str())) {
            return Err(ManifestError::Field(format!(
                "a {} plugin cannot ask for {c:?}; it may ask for: {}",
                self.kind,
                allowed.join(", ")
            )));
        }
        if self.description.len() > MAX_DESCRIPTION {
            return Err(ManifestError::Field(format!(
                "the description is {} bytes; the limit is {MAX_DESCRIPTION}",
                self.description.len()
            )));
        }
        if self.config.len() > MAX_CONFIG_KEYS {
            return Err(ManifestError::Field(format!(
                "the config schema has {} keys; the limit is {MAX_CONFIG_KEYS}",
                self.config.len()
            )));
        }
        let bad_key = |k: &str| {
            k.is_empty()
                || k.len() > 64
                || !k.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if let Some(k) = self.config.keys().find(|k| bad_key(k)) {
            return Err(ManifestError::Field(format!(
                "config key {:?}: use 1-64 characters a-z, A-Z, 0-9, _, -, .",
                k.chars().take(80).collect::<String>()
            )));
        }
        if let Some((k, _)) = self.config.iter().find(|(_, f)| f.description.len() > MAX_FIELD_DESCRIPTION) {
            return Err(ManifestError::Field(format!(
                "the description of config key {k:?} is over {MAX_FIELD_DESCRIPTION} bytes"
            )));
        }
        for (key, field) in &self.config {
            if let Some(d) = &field.default {
                check_value(key, field, d).map_err(ManifestError::Field)?;
            }
        }
        Ok(())
    }

    /// Validates a full config against the schema: unknown keys, types, required keys.
    /// Returns the config with defaults filled in.
    pub fn check_config(&self, config: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, String> {
        if let Some(k) = config.keys().find(|k| !self.config.contains_key(*k)) {
            let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
            return Err(format!("unknown config key {k:?}; {} takes: {}", self.name, known.join(", ")));
        }
        let mut out = BTreeMap::new();
        for (key, field) in &self.config {
            match config.get(key).or(field.default.as_ref()) {
                Some(v) => {
                    check_value(key, field, v)?;
                    out.insert(key.clone(), v.clone());
                }
                None if field.required => return Err(format!("config key {key:?} is required")),
                None => {}
            }
        }
        Ok(out)
    }
}

fn check_value(key: &str, field: &ConfigField, v: &str) -> Result<(), String> {
    let ok = match field.kind {
        FieldType::String => v.len() <= 64 * 1024,
        FieldType::Integer => v.trim().parse::<i64>().is_ok(),
        FieldType::Boolean => matches!(v, "true" | "false"),
    };
    if ok { Ok(()) } else { Err(format!("config key {key:?} must be a {:?}, got {v:?}", field.kind)) }
}

/// Adds a `halo-manifest` section holding `manifest` (JSON) to a finished component,
/// replacing any it had (one the SDK's `manifest!` wrote inside the core module, say), so
/// the result has exactly one.
pub fn pack(component: &[u8], manifest: &[u8]) -> Result<Vec<u8>, ManifestError> {
    custom_sections(component)?;
    let m: Manifest = serde_json::from_slice(manifest).map_err(|e| ManifestError::Malformed(e.to_string()))?;
    m.validate()?;
    let mut out = strip(component, true)?;
    if !custom_sections(&out)?.is_empty() {
        return Err(ManifestError::Invalid("could not remove the component's own manifest section".into()));
    }
    let mut payload = Vec::new();
    leb(&mut payload, SECTION.len() as u64);
    payload.extend_from_slice(SECTION.as_bytes());
    payload.extend_from_slice(manifest);
    out.push(0);
    leb(&mut out, payload.len() as u64);
    out.extend_from_slice(&payload);
    Ok(out)
}

fn read_leb(bytes: &[u8], at: &mut usize) -> Result<u64, ManifestError> {
    let (mut v, mut shift) = (0u64, 0u32);
    loop {
        let b = *bytes.get(*at).ok_or_else(|| ManifestError::Invalid("truncated".into()))?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(ManifestError::Invalid("bad LEB128".into()));
        }
    }
}

/// `bytes` (a component when `component`, else a core module) without its `halo-manifest`
/// custom sections, at any depth of nested modules and components.
fn strip(bytes: &[u8], component: bool) -> Result<Vec<u8>, ManifestError> {
    let header = bytes.get(..8).ok_or_else(|| ManifestError::Invalid("truncated".into()))?;
    let mut out = header.to_vec();
    let mut at = 8;
    while at < bytes.len() {
        let id = bytes[at];
        at += 1;
        let len = usize::try_from(read_leb(bytes, &mut at)?).map_err(|_| ManifestError::Invalid("size".into()))?;
        let body = bytes.get(at..at.saturating_add(len)).ok_or_else(|| ManifestError::Invalid("truncated".into()))?;
        at += len;
        let kept = match (id, component) {
            (0, _) => {
                let mut p = 0;
                let n = usize::try_from(read_leb(body, &mut p)?).map_err(|_| ManifestError::Invalid("size".into()))?;
                if body.get(p..p.saturating_add(n)) == Some(SECTION.as_bytes()) {
                    continue;
                }
                body.to_vec()
            }
            // A core module, or a nested component, inside a component.
            (1, true) => strip(body, false)?,
            (4, true) => strip(body, true)?,
            _ => body.to_vec(),
        };
        out.push(id);
        leb(&mut out, kept.len() as u64);
        out.extend_from_slice(&kept);
    }
    Ok(out)
}

fn leb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> String {
        format!(r#"{{"name": "p", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.0"{extra}}}"#)
    }

    #[test]
    fn config_is_checked_against_the_schema() {
        let m: Manifest = serde_json::from_str(&manifest(
            r#", "config": {"n": {"type": "integer", "default": "3"}, "tz": {"type": "string", "required": true}}"#,
        ))
        .expect("manifest");
        let cfg = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(m.check_config(&cfg(&[("tz", "UTC")])).expect("ok").get("n").map(String::as_str), Some("3"));
        assert!(m.check_config(&cfg(&[])).expect_err("required").contains("tz"));
        assert!(m.check_config(&cfg(&[("tz", "UTC"), ("n", "x")])).expect_err("type").contains("Integer"));
        assert!(m.check_config(&cfg(&[("tz", "UTC"), ("zone", "x")])).expect_err("unknown").contains("zone"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let bad =
            |s: &str| serde_json::from_str::<Manifest>(s).expect("json").validate().expect_err("invalid").to_string();
        assert!(bad(&manifest("").replace("halo:plugin@0.1.0", "halo:plugin@9.0.0")).contains("rebuild"));
        assert!(bad(&manifest("").replace("presence-states", "chat-bot")).contains("kind"));
        assert!(bad(&manifest(r#", "capabilities": ["network"]"#)).contains("network"));
        assert!(bad(&manifest("").replace("\"p\"", "\"Bad Name\"")).contains("name"));
    }

    #[test]
    fn capabilities_depend_on_the_kind_and_sizes_are_bounded() {
        let bad =
            |s: &str| serde_json::from_str::<Manifest>(s).expect("json").validate().expect_err("invalid").to_string();
        for cap in ["net", "dir", "http"] {
            let e = bad(&manifest(&format!(r#", "capabilities": ["{cap}"]"#)));
            assert!(e.contains("a presence-states plugin cannot ask for") && e.contains("may ask for: kv"), "{e}");
        }
        let sink = manifest(r#", "capabilities": ["dir", "http", "kv"]"#)
            .replace("presence-states", "archive-sink")
            .replace("halo:plugin@0.1.0", "halo:plugin@0.1.1");
        serde_json::from_str::<Manifest>(&sink).expect("json").validate().expect("a sink may write files and call out");
        let long = format!(r#", "description": "{}""#, "x".repeat(MAX_DESCRIPTION + 1));
        assert!(bad(&manifest(&long)).contains("the limit is 4096"));
        let keys: Vec<String> = (0..=MAX_CONFIG_KEYS).map(|i| format!(r#""k{i}": {{"type": "string"}}"#)).collect();
        assert!(bad(&manifest(&format!(r#", "config": {{{}}}"#, keys.join(",")))).contains("257 keys"));
        assert!(bad(&manifest(r#", "config": {"a\u001b[31m": {"type": "string"}}"#)).contains("config key"));
    }

    /// A component of one core module holding `inner` custom sections, with `outer` ones
    /// after it.
    fn component(inner: &[&[u8]], outer: &[&[u8]]) -> Vec<u8> {
        let section = |out: &mut Vec<u8>, id: u8, body: &[u8]| {
            out.push(id);
            leb(out, body.len() as u64);
            out.extend_from_slice(body);
        };
        let custom = |data: &[u8]| {
            let mut b = Vec::new();
            leb(&mut b, SECTION.len() as u64);
            b.extend_from_slice(SECTION.as_bytes());
            b.extend_from_slice(data);
            b
        };
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        for d in inner {
            section(&mut module, 0, &custom(d));
        }
        let mut c = b"\0asm\x0d\0\x01\0".to_vec();
        section(&mut c, 1, &module);
        for d in outer {
            section(&mut c, 0, &custom(d));
        }
        c
    }

    #[test]
    fn two_manifests_are_ambiguous_and_pack_replaces_the_one_inside() {
        let m = manifest("");
        let two = component(&[m.as_bytes()], &[m.as_bytes()]);
        assert!(Manifest::read(&two).expect_err("ambiguous").to_string().contains("2 `halo-manifest` sections"));
        let sdk = component(&[m.as_bytes()], &[]);
        assert_eq!(Manifest::read(&sdk).expect("one").name, "p");
        let packed = pack(&sdk, manifest("").replace("\"p\"", "\"q\"").as_bytes()).expect("pack");
        assert_eq!(custom_sections(&packed).expect("parse").len(), 1);
        assert_eq!(Manifest::read(&packed).expect("packed").name, "q");
    }

    #[test]
    fn core_modules_and_garbage_are_refused() {
        assert!(matches!(Manifest::read(b"not wasm"), Err(ManifestError::Invalid(_))));
        let core_module = b"\0asm\x01\0\0\0";
        assert!(Manifest::read(core_module).expect_err("core").to_string().contains("core module"));
    }
}
