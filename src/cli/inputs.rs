//! The input flags shared by `build` and `query --input`: format, field names, time layout
//! and zone, presets; and their check against the files before anything is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use textreuse::input::{
    inspect, preset, FieldNames, InputFormat, InputOptions, InputTally, Inspection, TimeParser,
    INSPECT_RECORDS, PRESETS,
};

/// How to read input files (shared by `build` and `query --input`).
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Input format: auto (from the file name, else from the content), jsonl, csv or text.
    #[arg(long, default_value = "auto", value_name = "auto|jsonl|csv|text")]
    pub format: InputFormat,
    /// Field holding the post id [default: id].
    #[arg(long, value_name = "NAME")]
    pub id_field: Option<String>,
    /// Field holding the post text [default: text].
    #[arg(long, value_name = "NAME")]
    pub text_field: Option<String>,
    /// Field holding the account [default: account].
    #[arg(long, value_name = "NAME")]
    pub account_field: Option<String>,
    /// Field holding the platform [default: platform].
    #[arg(long, value_name = "NAME")]
    pub platform_field: Option<String>,
    /// Field holding the time [default: ts]: unix seconds or milliseconds, or a date and
    /// time such as 2019-08-19, 2019-08-19 14:03, 2019-08-19T14:03:05.25+08:00.
    #[arg(long, value_name = "NAME")]
    pub ts_field: Option<String>,
    /// A strftime layout for times the common layouts do not cover (e.g. "%m/%d/%Y %H:%M").
    #[arg(long, value_name = "LAYOUT")]
    pub ts_format: Option<String>,
    /// Time zone of times without an offset: an IANA name (Asia/Taipei), UTC, or an offset
    /// (+08:00) [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Read the inputs as a known export (`--preset list` lists them). Without it, a
    /// preset is used when the default field names are absent.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
}

/// The flags and names of the five fields, with the name given on the command line.
fn named(args: &InputArgs) -> [(&'static str, Option<&String>); 5] {
    [
        ("--id-field", args.id_field.as_ref()),
        ("--text-field", args.text_field.as_ref()),
        ("--account-field", args.account_field.as_ref()),
        ("--platform-field", args.platform_field.as_ref()),
        ("--ts-field", args.ts_field.as_ref()),
    ]
}

/// `fields` with the names given on the command line put in.
fn with_named(args: &InputArgs, mut fields: FieldNames) -> FieldNames {
    let set = |slot: &mut String, v: &Option<String>| {
        if let Some(v) = v {
            slot.clone_from(v);
        }
    };
    set(&mut fields.id, &args.id_field);
    set(&mut fields.text, &args.text_field);
    set(&mut fields.account, &args.account_field);
    set(&mut fields.platform, &args.platform_field);
    set(&mut fields.ts, &args.ts_field);
    fields
}

/// Prints the presets (for `--preset list`).
pub fn list_presets() -> Result<()> {
    let mut o = String::new();
    for p in PRESETS {
        o.push_str(&format!("{:<12} {}\n", p.name, p.about));
        let mut show = |role: &str, names: &[&str]| {
            if !names.is_empty() {
                o.push_str(&format!("{:<12}   {role:<9} {}\n", "", names.join(" | ")));
            }
        };
        show("id", p.id);
        show("text", p.text);
        show("account", p.account);
        show("platform", p.platform);
        show("ts", p.ts);
    }
    super::util::print_out(&o)
}

/// The fields a file has, for a message.
fn existing(i: &Inspection) -> String {
    if i.fields.is_empty() {
        return "none".to_owned();
    }
    let mut s = i
        .fields
        .iter()
        .take(40)
        .map(|f| format!("{f:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if i.fields.len() > 40 {
        s.push_str(&format!(" and {} more", i.fields.len() - 40));
    }
    s
}

/// Where the field names were looked for, for a message.
fn looked_in(i: &Inspection) -> String {
    match i.format {
        InputFormat::Csv => "its header has".to_owned(),
        _ => format!("its first {INSPECT_RECORDS} records have"),
    }
}

/// Checks the input flags against the files and returns the options to read them with;
/// `None` when `--preset list` was asked (the list is printed).
///
/// Checks, before anything is written: every input exists; `--ts-format` and `--tz` are
/// valid; a field named on the command line is in each file (CSV header, or one of the
/// first 1,000 JSONL records); the text field is found, through a preset when the default
/// names are absent. Prints the mapping of a preset on stderr. Standard input is not
/// inspected, nor is any input that is not a regular file (a named pipe, `<(command)`, a
/// device): it can be read only once, and the build reads it from its start.
pub fn resolve(
    args: &InputArgs,
    inputs: &[PathBuf],
    tally: &Arc<InputTally>,
) -> Result<Option<InputOptions>> {
    if args.preset.as_deref() == Some("list") {
        list_presets()?;
        return Ok(None);
    }
    let forced = match &args.preset {
        None => None,
        Some(name) => Some(preset(name).with_context(|| {
            let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            format!(
                "--preset {name}: no such preset (known: {}; `--preset list` shows them)",
                known.join(", ")
            )
        })?),
    };
    TimeParser::new(args.ts_format.as_deref(), None)
        .with_context(|| format!("--ts-format {:?}", args.ts_format.as_deref().unwrap_or("")))?;
    TimeParser::new(None, args.tz.as_deref())
        .with_context(|| format!("--tz {:?}", args.tz.as_deref().unwrap_or("")))?;
    let base = with_named(args, FieldNames::default());
    let mut chosen: Option<(FieldNames, PathBuf)> = None;
    for path in inputs {
        if path.as_os_str() == "-" || is_stream(path) {
            continue;
        }
        let fields = file_fields(args, path, forced, &base)?;
        match &chosen {
            None => chosen = Some((fields, path.clone())),
            Some((f, first)) if *f != fields => bail!(
                "{} and {} need different field names ({f:?} and {fields:?}); read them in \
                 separate runs (build --append) or name the fields",
                first.display(),
                path.display()
            ),
            Some(_) => {}
        }
    }
    let fields = chosen.map_or(base, |(f, _)| f);
    Ok(Some(InputOptions {
        format: args.format,
        fields,
        ts_format: args.ts_format.clone(),
        tz: args.tz.clone(),
        tally: Some(Arc::clone(tally)),
        ..InputOptions::default()
    }))
}

/// Whether `path` names something that exists and is neither a regular file nor a directory
/// (a named pipe, a process substitution's `/dev/fd/N`, a device): what is read from it is
/// gone, so reading its start to inspect it would take those records from the build.
pub fn is_stream(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The field names to read the file at `path` with (see [`resolve`]).
fn file_fields(
    args: &InputArgs,
    path: &Path,
    forced: Option<&textreuse::input::Preset>,
    base: &FieldNames,
) -> Result<FieldNames> {
    if path.is_dir() {
        bail!(
            "{}: is a directory, not an input file (--input)",
            path.display()
        );
    }
    if !path.exists() {
        bail!("{}: no such file (--input)", path.display());
    }
    let opts = InputOptions {
        format: args.format,
        ..InputOptions::default()
    };
    let found = inspect(path, &opts).with_context(|| "failed to read the input (--input)")?;
    if found.format == InputFormat::Text {
        return Ok(base.clone());
    }
    let name = path.display();
    let mut fields = base.clone();
    let mut from_preset = None;
    if let Some(p) = forced {
        let Some(f) = p.resolve(&found, base) else {
            bail!(
                "{name}: --preset {} needs a text field named {}, but {} {}",
                p.name,
                p.text.join(" or "),
                looked_in(&found),
                existing(&found)
            );
        };
        fields = with_named(args, f);
        from_preset = Some(p);
    } else if args.text_field.is_none() && !found.has(&base.text) {
        if let Some((p, f)) = PRESETS
            .iter()
            .find_map(|p| p.resolve(&found, base).map(|f| (p, f)))
        {
            fields = with_named(args, f);
            from_preset = Some(p);
        }
    }
    for (flag, given) in named(args) {
        if let Some(n) = given {
            if !found.has(n) {
                bail!(
                    "{name}: {flag} {n} names no field of this file: {} {}",
                    looked_in(&found),
                    existing(&found)
                );
            }
        }
    }
    if !found.has(&fields.text) {
        bail!(
            "{name}: no {:?} field for the post text: {} {}; name it with --text-field \
             (or see --preset list)",
            fields.text,
            looked_in(&found),
            existing(&found)
        );
    }
    if let Some(p) = from_preset {
        let mut map = format!("id={}, text={}", show(&found, &fields.id), fields.text);
        map.push_str(&format!(", account={}", show(&found, &fields.account)));
        map.push_str(&format!(", platform={}", show(&found, &fields.platform)));
        map.push_str(&format!(", ts={}", show(&found, &fields.ts)));
        eprintln!(
            "textreuse: {name}: reading it as {} ({}): {map}",
            p.name, p.about
        );
    }
    Ok(fields)
}

/// A field name for the mapping message, or `(none)` when the file does not have it.
fn show(found: &Inspection, field: &str) -> String {
    if found.has(field) {
        field.to_owned()
    } else {
        "(none)".to_owned()
    }
}

/// Prints how many posts were kept without a time because theirs could not be read.
pub fn report_times(tally: &InputTally) {
    let n = tally.unreadable_times();
    if n == 0 {
        return;
    }
    let first = tally.examples().into_iter().next().unwrap_or_default();
    eprintln!(
        "textreuse: {n} post{} without a readable time, indexed without one (first: {first}); \
         see --ts-format and --tz",
        if n == 1 { "" } else { "s" }
    );
}
