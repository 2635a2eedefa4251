//! The Go text/template engine: consul-template's dialect (`*.ctmpl`),
//! byte-identical to consul-template v0.41.1 on the same data. The lexer,
//! parser and executor are ports of Go's `text/template`; the functions
//! are consul-template's, over the same [`Data`](crate::consul::Data) the
//! Tera engine reads.

mod data;
mod exec;
mod fmt;
mod functions;
mod json;
mod lex;
mod parse;
mod value;

use std::sync::Arc;

use super::record::Record;
use super::{Options, Rendered, Snapshot, TemplateError};
use parse::Trees;

/// A parsed Go-dialect template.
pub struct GoTemplate {
    name: String,
    source: String,
    trees: Trees,
    options: Options,
}

impl GoTemplate {
    /// Parses `source` with the given action delimiters, to run as
    /// `options` say.
    pub fn parse(
        name: &str,
        source: &str,
        left: &str,
        right: &str,
        options: Options,
    ) -> Result<GoTemplate, TemplateError> {
        let trees = parse::parse(source, left, right, &exec::is_function)
            .map_err(|e| locate(name, source, Some(e.pos), e.message))?;
        Ok(GoTemplate {
            name: name.to_owned(),
            source: source.to_owned(),
            trees,
            options,
        })
    }

    /// Renders against `snapshot`. A render that fails while some of its
    /// data is still missing is not an error but a wait: consul-template
    /// runs a first pass with no data and exits if it fails (`index
    /// (service "web") 0` does), where consul-render waits for the data it
    /// has looked up so far and renders again when it arrives.
    pub fn render(&self, snapshot: &Arc<Snapshot>) -> Result<Rendered, TemplateError> {
        let mut record = Record::default();
        let lookup = data::Lookup {
            snapshot,
            record: &mut record,
            sandbox: self.options.sandbox.as_ref(),
        };
        let result = exec::Exec::new(&self.trees, &self.name, lookup, &self.options).run();
        if result.is_err() && !record.missing.is_empty() {
            return Ok(Rendered {
                text: String::new(),
                used: record.used,
                missing: record.missing,
            });
        }
        let text = result.map_err(|e| {
            let message = if e.pos.is_some() {
                format!(
                    "executing {} at <{}>: {}",
                    parse::quote(&e.template),
                    e.context,
                    e.message
                )
            } else {
                e.message
            };
            locate(&self.name, &self.source, e.pos, message)
        })?;
        Ok(Rendered {
            text,
            used: record.used,
            missing: record.missing,
        })
    }
}

/// A [`TemplateError`] in Go's shape, `template: NAME:LINE:COL: message`
/// (COL counts bytes from 0, as Go's does), with the line shown.
fn locate(name: &str, source: &str, pos: Option<usize>, message: String) -> TemplateError {
    let Some(pos) = pos.filter(|&p| p <= source.len() && source.is_char_boundary(p)) else {
        return TemplateError {
            location: format!("template: {name}"),
            message,
            excerpt: None,
        };
    };
    let before = &source[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let byte_col = pos - line_start;
    let char_col = source[line_start..pos].chars().count() + 1;
    TemplateError {
        location: format!("template: {name}:{line}:{byte_col}"),
        message,
        excerpt: Some(TemplateError::excerpt(source, line, char_col, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consul::data::{Instance, KvEntry, Status};
    use crate::consul::model::Weights;
    use crate::consul::{Data, Dependency, HealthQuery};
    use crate::template::Denylist;

    fn instance(node: &str, id: &str, port: u16, status: Status) -> Instance {
        Instance {
            id: id.into(),
            name: "web".into(),
            address: "10.0.0.1".into(),
            port,
            node: node.into(),
            status,
            tags: vec!["blue".into(), "prod".into()],
            meta: [("zone".to_owned(), "a".to_owned())].into(),
            weights: Weights {
                passing: 3,
                warning: 1,
            },
            ..Instance::default()
        }
    }

    fn snapshot() -> Arc<Snapshot> {
        let mut snapshot = Snapshot::default();
        snapshot.insert(
            Dependency::Health(HealthQuery::new("web", &[], None, true)),
            Data::Instances(vec![
                instance("n1", "a", 80, Status::Passing),
                instance("n2", "b", 81, Status::Passing),
            ]),
        );
        snapshot.insert(
            Dependency::Health(HealthQuery::new("web", &[], None, false)),
            Data::Instances(vec![
                instance("n1", "a", 80, Status::Passing),
                instance("n2", "b", 81, Status::Passing),
                instance("n3", "c", 82, Status::Critical),
            ]),
        );
        snapshot.insert(
            Dependency::Tree {
                prefix: "app".into(),
                dc: None,
            },
            Data::Tree(vec![
                KvEntry {
                    key: "a".into(),
                    value: "1".into(),
                    path: "app/a".into(),
                    ..KvEntry::default()
                },
                KvEntry {
                    key: "sub/b".into(),
                    value: "2".into(),
                    path: "app/sub/b".into(),
                    ..KvEntry::default()
                },
            ]),
        );
        snapshot.insert(
            Dependency::Key {
                path: "absent".into(),
                dc: None,
            },
            Data::Key(None),
        );
        Arc::new(snapshot)
    }

    fn render(source: &str) -> Rendered {
        render_with(source, Options::default())
    }

    fn render_with(source: &str, options: Options) -> Rendered {
        GoTemplate::parse("t.ctmpl", source, "{{", "}}", options)
            .expect("parses")
            .render(&snapshot())
            .expect("renders")
    }

    fn first_line(error: String) -> String {
        error.lines().next().unwrap_or_default().to_owned()
    }

    fn text(source: &str) -> String {
        render(source).text
    }

    fn error(source: &str) -> String {
        error_with(source, Options::default())
    }

    /// The error `source` fails with under `options`.
    fn error_with(source: &str, options: Options) -> String {
        match GoTemplate::parse("t.ctmpl", source, "{{", "}}", options)
            .map(|t| t.render(&snapshot()))
        {
            Err(e) | Ok(Err(e)) => e.to_string(),
            Ok(Ok(r)) => panic!("expected an error, rendered {:?}", r.text),
        }
    }

    #[test]
    fn ranges_over_instances_with_go_field_names() {
        assert_eq!(
            text(
                "{{range service \"web\"}}{{.Node}} {{.ID}} {{.Address}}:{{.Port}} {{.Weights.Passing}}\n{{end}}"
            ),
            "n1 a 10.0.0.1:80 3\nn2 b 10.0.0.1:81 3\n"
        );
        assert_eq!(
            text("{{range $i, $s := service \"web|any\"}}{{$i}}={{$s.Status}};{{end}}"),
            "0=passing;1=passing;2=critical;"
        );
        assert_eq!(
            text("{{range service \"web|critical\"}}{{.ID}}{{end}}"),
            "c"
        );
    }

    #[test]
    fn missing_data_renders_empty_and_is_recorded() {
        let rendered = render("{{range service \"api\"}}x{{else}}none{{end}}");
        assert_eq!(rendered.text, "none");
        assert_eq!(rendered.missing.len(), 1);
        let rendered = render("[{{key \"absent\"}}]");
        assert_eq!(rendered.text, "[]");
        assert_eq!(
            rendered.missing.len(),
            1,
            "a missing key holds the render back"
        );
    }

    #[test]
    fn ls_keeps_direct_children_and_tree_everything() {
        assert_eq!(
            text("{{range ls \"app\"}}{{.Key}}={{.Value}};{{end}}"),
            "a=1;"
        );
        assert_eq!(
            text("{{range tree \"app\"}}{{.Key}}={{.Value}};{{end}}"),
            "a=1;sub/b=2;"
        );
    }

    #[test]
    fn variables_control_flow_and_templates() {
        assert_eq!(
            text("{{$x := \"a\"}}{{with $x}}[{{.}}]{{end}}{{$x = \"b\"}}{{$x}}"),
            "[a]b"
        );
        assert_eq!(
            text(
                "{{range $i, $e := service \"web|any\"}}{{if $i}}{{break}}{{end}}{{$e.ID}}{{end}}"
            ),
            "a"
        );
        assert_eq!(
            text("{{range service \"web|any\"}}{{if .Tags}}{{continue}}{{end}}x{{end}}."),
            "."
        );
        assert_eq!(
            text(
                "{{define \"t\"}}<{{.}}>{{end}}{{template \"t\" \"v\"}}{{block \"b\" 1}}{{.}}{{end}}"
            ),
            "<v>1"
        );
        assert_eq!(text("{{.}} {{.Missing}}"), "<no value> <no value>");
        assert_eq!(text("{{range 3}}{{.}}{{end}}"), "012");
        assert_eq!(
            text(
                "{{with service \"web\"}}{{range .}}{{.ServiceMeta.zone}}{{.ServiceMeta.nope}}{{end}}{{end}}"
            ),
            "aa"
        );
    }

    #[test]
    fn scratch_keeps_values_for_the_render() {
        assert_eq!(
            text(
                "{{scratch.Set \"a\" 1}}{{scratch.SetX \"a\" 2}}{{scratch.Get \"a\"}}{{scratch.Key \"b\"}}{{scratch.MapSet \"m\" \"z\" 1}}{{scratch.MapSet \"m\" \"y\" 2}}{{range scratch.MapValues \"m\"}}{{.}}{{end}}"
            ),
            "1false21"
        );
    }

    #[test]
    fn errors_are_located_as_go_locates_them() {
        assert_eq!(
            error("a\n{{range service \"web\"}}{{.Nope}}{{end}}"),
            "template: t.ctmpl:2:25: executing \"t.ctmpl\" at <.Nope>: can't evaluate field Nope in type *dependency.HealthService\n  |\n2 | {{range service \"web\"}}{{.Nope}}{{end}}\n  |                          ^"
        );
        assert!(
            error("{{nope}}").starts_with("template: t.ctmpl:1:2: function \"nope\" not defined")
        );
        assert!(
            error("{{service 1}}").contains("at <1>: expected string; found 1"),
            "{}",
            error("{{service 1}}")
        );
        assert!(
            error("{{key \"a\" \"b\"}}").contains("wrong number of args for key: want 1 got 2")
        );
        assert!(
            error("{{service \"bad name!\"}}")
                .contains("error calling service: health.service: invalid format")
        );
        assert!(error("{{template \"x\"}}").contains("template \"x\" not defined"));
        // The parser lets an assignment to an undeclared variable through;
        // running it fails.
        assert!(
            error("{{ $x = 1 }}").contains("at <1>: undefined variable: $x"),
            "{}",
            error("{{ $x = 1 }}")
        );
    }

    #[test]
    fn a_failed_call_is_reported_at_the_whole_command_as_go_reports_it() {
        let long = "x".repeat(34);
        let cases = [
            (
                format!("{{{{ parseInt \"{long}\" }}}}"),
                format!(
                    "template: t.ctmpl:1:3: executing \"t.ctmpl\" at <parseInt \"{long}\">: error calling parseInt: parseInt: strconv.ParseInt: parsing \"{long}\": invalid syntax"
                ),
            ),
            (
                r#"{{ printf "%s" (parseInt "12x") }}"#.to_owned(),
                r#"template: t.ctmpl:1:16: executing "t.ctmpl" at <parseInt "12x">: error calling parseInt: parseInt: strconv.ParseInt: parsing "12x": invalid syntax"#.to_owned(),
            ),
            (
                r#"{{ "12x" | parseInt }}"#.to_owned(),
                r#"template: t.ctmpl:1:11: executing "t.ctmpl" at <parseInt>: error calling parseInt: parseInt: strconv.ParseInt: parsing "12x": invalid syntax"#.to_owned(),
            ),
            (
                r#"{{ call "x" }}"#.to_owned(),
                r#"template: t.ctmpl:1:3: executing "t.ctmpl" at <call "x">: error calling call: non-function "x" of type string"#.to_owned(),
            ),
            (
                r#"{{ "a" | call }}"#.to_owned(),
                r#"template: t.ctmpl:1:9: executing "t.ctmpl" at <call>: error calling call: non-function a of type string"#.to_owned(),
            ),
            (
                "{{ call .Missing }}".to_owned(),
                r#"template: t.ctmpl:1:3: executing "t.ctmpl" at <call .Missing>: error calling call: call of nil"#.to_owned(),
            ),
            (
                r#"{{ executeTemplate "nope" 1 }}"#.to_owned(),
                r#"template: t.ctmpl:1:3: executing "t.ctmpl" at <executeTemplate "nope" 1>: error calling executeTemplate: template: no template "nope" associated with template """#.to_owned(),
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(first_line(error(&source)), expected, "{source}");
        }
    }

    #[test]
    fn denied_functions_fail_when_called_as_consul_template_s_do() {
        let options = || Options {
            denylist: Denylist::new(
                ["env", "sprig_*", "print", "len", "scratch", "service"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            ..Options::default()
        };
        let cases = [
            (
                r#"{{ env "HOME" }}"#,
                r#"template: t.ctmpl:1:3: executing "t.ctmpl" at <env "HOME">: error calling env: function is disabled"#,
            ),
            // Its arguments are still checked against `...string`.
            (
                "{{ env 1 }}",
                r#"template: t.ctmpl:1:7: executing "t.ctmpl" at <1>: expected string; found 1"#,
            ),
            (
                "{{ 1 | env }}",
                r#"template: t.ctmpl:1:7: executing "t.ctmpl" at <env>: wrong type for value; expected string; got int"#,
            ),
            (
                r#"{{ "a" | sprig_upper }}"#,
                r#"template: t.ctmpl:1:9: executing "t.ctmpl" at <sprig_upper>: error calling sprig_upper: function is disabled"#,
            ),
            (
                r#"{{ scratch.Set "a" 1 }}"#,
                r#"template: t.ctmpl:1:3: executing "t.ctmpl" at <scratch>: error calling scratch: function is disabled"#,
            ),
            (
                r#"{{ range service "web" }}{{ end }}"#,
                r#"template: t.ctmpl:1:9: executing "t.ctmpl" at <service "web">: error calling service: function is disabled"#,
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(
                first_line(error_with(source, options())),
                expected,
                "{source}"
            );
        }
        // Go's builtins are not consul-template's to deny, and a denied
        // function that is never called costs nothing.
        let rendered = render_with(
            r#"{{ print "ab" | len }}{{ if false }}{{ env "HOME" }}{{ end }}"#,
            options(),
        );
        assert_eq!(rendered.text, "2");
        assert!(rendered.used.is_empty());
    }

    #[test]
    fn error_on_missing_key_fails_where_go_s_missingkey_error_does() {
        let strict = || Options {
            error_on_missing_key: true,
            ..Options::default()
        };
        let cases = [
            (
                "{{ .foo }}",
                r#"template: t.ctmpl:1:3: executing "t.ctmpl" at <.foo>: nil data; no entry for key "foo""#,
            ),
            (
                "{{ $.foo }}",
                r#"template: t.ctmpl:1:4: executing "t.ctmpl" at <$.foo>: nil data; no entry for key "foo""#,
            ),
            (
                r#"{{ range service "web" }}{{ .ServiceMeta.zone }}{{ .ServiceMeta.nope }}{{ end }}"#,
                r#"template: t.ctmpl:1:63: executing "t.ctmpl" at <.ServiceMeta.nope>: map has no entry for key "nope""#,
            ),
            (
                r#"{{ (parseJSON "{\"a\":1}").b }}"#,
                r#"template: t.ctmpl:1:14: executing "t.ctmpl" at <"{\"a\":1}">: map has no entry for key "b""#,
            ),
            (
                r#"{{ define "x" }}[{{ .b }}]{{ end }}{{ template "x" (splitToMap "a:1" "," ":") }}"#,
                r#"template: t.ctmpl:1:20: executing "x" at <.b>: map has no entry for key "b""#,
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(
                first_line(error_with(source, strict())),
                expected,
                "{source}"
            );
        }
        // `index` knows no missing-key rule, and keys that are there read
        // as always.
        let source = r#"{{ index (parseJSON "{}") "x" }} {{ range service "web" }}{{ .ServiceMeta.zone }}{{ end }}"#;
        assert_eq!(render_with(source, strict()).text, "<no value> aa");
        assert_eq!(
            text(r#"{{ .foo }} [{{ range service "web" }}{{ .ServiceMeta.nope }}{{ end }}]"#),
            "<no value> []"
        );
    }
}
