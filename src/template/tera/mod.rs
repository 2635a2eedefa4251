//! The Tera engine: consul-render's native dialect (`*.tera`). Functions
//! take named arguments (`service(name="web")`) and instances have
//! snake_case fields (`i.address`, `i.node_meta`).

mod functions;
mod values;

use std::sync::{Arc, Mutex, PoisonError};

use super::{Options, Rendered, Snapshot, TemplateError};
use values::Values;

/// A parsed Tera template.
pub struct TeraTemplate {
    name: String,
    source: String,
    tera: tera::Tera,
    /// Conversions of the data the last render read, reused while
    /// unchanged. A lock (uncontended: one runner renders) keeps a parsed
    /// template shareable.
    values: Mutex<Values>,
}

impl TeraTemplate {
    /// Parses `source`, with the sandbox and the denied functions of
    /// `options` (`error_on_missing_key` does not apply: Tera always fails
    /// a render that prints a missing key).
    pub fn parse(
        name: &str,
        source: &str,
        options: &Options,
    ) -> Result<TeraTemplate, TemplateError> {
        let mut tera = tera::Tera::new();
        // Output is configuration, not HTML: escaping would corrupt it.
        // Safety of values from Consul is the data model's job.
        tera.autoescape_on(Vec::<&'static str>::new());
        functions::register(&mut tera, options);
        tera.add_raw_template(name, source)
            .map_err(|e| locate(name, source, &e))?;
        Ok(TeraTemplate {
            name: name.to_owned(),
            source: source.to_owned(),
            tera,
            values: Mutex::default(),
        })
    }

    pub fn render(&self, snapshot: &Arc<Snapshot>) -> Result<Rendered, TemplateError> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let (result, record) = functions::with_scope(snapshot, &mut values, || {
            self.tera.render(&self.name, &tera::Context::new())
        });
        let text = result.map_err(|e| locate(&self.name, &self.source, &e))?;
        Ok(Rendered {
            text,
            used: record.used,
            missing: record.missing,
        })
    }
}

/// Turns a Tera error into a [`TemplateError`] with `path:line:col`.
fn locate(name: &str, source: &str, error: &tera::Error) -> TemplateError {
    match error.kind() {
        tera::ErrorKind::SyntaxError(report) | tera::ErrorKind::RenderingError(report) => {
            let span = report.span();
            let width = if span.end_line == span.start_line && span.end_col > span.start_col {
                span.end_col - span.start_col
            } else {
                1
            };
            TemplateError::at(
                name,
                source,
                span.start_line,
                span.start_col + 1,
                width,
                report.message().to_owned(),
            )
        }
        _ => TemplateError {
            location: name.to_owned(),
            message: error.to_string(),
            excerpt: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::consul::data::{CheckInfo, Data, Instance, KvEntry, ServiceSummary, Status};
    use crate::consul::model::Weights;
    use crate::consul::{Dependency, HealthQuery};
    use crate::template::{Denylist, Options, Rendered, Snapshot, Syntax, Template};

    fn instance(id: &str, address: &str, port: u16, status: Status) -> Instance {
        Instance {
            id: id.into(),
            name: "web".into(),
            address: address.into(),
            port,
            tags: vec!["v1".into()],
            meta: [("weight".to_owned(), "3".to_owned())].into(),
            node: "n1".into(),
            node_address: "10.0.0.1".into(),
            node_meta: Default::default(),
            datacenter: "dc1".into(),
            status,
            weights: Weights {
                passing: 1,
                warning: 1,
            },
            ..Instance::default()
        }
    }

    fn health(name: &str, passing: bool) -> Dependency {
        Dependency::Health(HealthQuery::new(name, &[], None, passing))
    }

    fn render(source: &str, snapshot: Snapshot) -> Rendered {
        Template::parse("t.tera", source)
            .unwrap()
            .render(&Arc::new(snapshot))
            .unwrap()
    }

    #[test]
    fn renders_instances_with_every_field() {
        let mut snapshot = Snapshot::default();
        snapshot.insert(
            health("web", true),
            Data::Instances(vec![
                instance("a", "10.0.0.2", 80, Status::Passing),
                instance("b", "fe80::1", 81, Status::Passing),
            ]),
        );
        let out = render(
            "{% for i in service(name=\"web\") %}{{ i.id }} {{ i.name }} {{ i.endpoint }} {{ i.address }}:{{ i.port }} \
             {{ i.tags | join(sep=\",\") }} {{ i.meta.weight }} {{ i.node }} {{ i.node_address }} {{ i.datacenter }} \
             {{ i.status }} {{ i.weights.passing }}\n{% endfor %}",
            snapshot,
        );
        assert_eq!(
            out.text,
            "a web 10.0.0.2:80 10.0.0.2:80 v1 3 n1 10.0.0.1 dc1 passing 1\n\
             b web [fe80::1]:81 fe80::1:81 v1 3 n1 10.0.0.1 dc1 passing 1\n"
        );
        assert_eq!(out.used, BTreeSet::from([health("web", true)]));
        assert!(out.missing.is_empty());
    }

    #[test]
    fn instance_fields_come_in_their_documented_order() {
        let mut snapshot = Snapshot::default();
        snapshot.insert(
            health("web", true),
            Data::Instances(vec![instance("a", "10.0.0.2", 80, Status::Passing)]),
        );
        let out = render(
            "{% for i in service(name=\"web\") %}{% for k, v in i %}{{ k }} {% endfor %}{% endfor %}",
            snapshot,
        );
        assert_eq!(
            out.text,
            "id name address port endpoint tags meta node node_id node_address node_meta \
             node_tagged_addresses datacenter tagged_addresses status checks weights "
        );
    }

    /// Node parts are shared between the instances of one render; a later
    /// change to one service's copy must not show through another's.
    #[test]
    fn instances_on_one_node_keep_their_own_data_across_renders() {
        let on_node = |id: &str, rack: &str, check: &str| {
            let mut i = instance(id, "10.0.0.2", 80, Status::Passing);
            i.name = id.into();
            i.node_meta = [("rack".to_owned(), rack.to_owned())].into();
            i.checks = vec![CheckInfo {
                node: "n1".into(),
                check_id: "serfHealth".into(),
                name: String::new(),
                status: check.into(),
                service_id: String::new(),
                service_name: String::new(),
                service_tags: vec![],
                check_type: String::new(),
            }];
            Data::Instances(vec![i])
        };
        let template = Template::parse(
            "t.tera",
            "{% for s in [\"web\", \"api\"] %}{% for i in service(name=s) %}\
             {{ i.id }}:{{ i.node_meta.rack }}:{{ i.checks[0].status }} {% endfor %}{% endfor %}",
        )
        .unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.insert(health("web", true), on_node("web", "a", "passing"));
        snapshot.insert(health("api", true), on_node("api", "a", "passing"));
        let first = template.render(&Arc::new(snapshot.clone())).unwrap();
        assert_eq!(first.text, "web:a:passing api:a:passing ");
        snapshot.insert(health("api", true), on_node("api", "b", "warning"));
        let second = template.render(&Arc::new(snapshot)).unwrap();
        assert_eq!(second.text, "web:a:passing api:b:warning ");
    }

    #[test]
    fn a_lookup_without_data_is_recorded_as_missing() {
        let out = render(
            "{% for i in service(name=\"web\") %}x{% endfor %}{{ key(path=\"a\") }}",
            Snapshot::default(),
        );
        let key = Dependency::Key {
            path: "a".into(),
            dc: None,
        };
        assert_eq!(
            out.missing,
            BTreeSet::from([health("web", true), key.clone()])
        );
        assert_eq!(out.used, out.missing);

        // A key that exists nowhere keeps the render waiting, like consul-template's `key`.
        let mut snapshot = Snapshot::default();
        snapshot.insert(key.clone(), Data::Key(None));
        let out = render("{{ key(path=\"a\") }}", snapshot);
        assert_eq!(out.missing, BTreeSet::from([key]));
    }

    #[test]
    fn status_filters_choose_the_query_and_filter_its_result() {
        let all = vec![
            instance("a", "10.0.0.2", 80, Status::Passing),
            instance("b", "10.0.0.3", 80, Status::Warning),
            instance("c", "10.0.0.4", 80, Status::Critical),
        ];
        let mut snapshot = Snapshot::default();
        snapshot.insert(health("web", false), Data::Instances(all));
        let ids = |filter: &str| {
            let source = format!(
                "{{% for i in service(name=\"web\", {filter}) %}}{{{{ i.id }}}}{{% endfor %}}"
            );
            render(&source, snapshot.clone()).text
        };
        assert_eq!(ids("status=\"any\""), "abc");
        assert_eq!(ids("status=[\"passing\", \"warning\"]"), "ab");
        assert_eq!(ids("status=\"critical\""), "c");
    }

    #[test]
    fn kv_and_catalog_functions_read_their_dependencies() {
        let mut snapshot = Snapshot::default();
        snapshot.insert(
            Dependency::Key {
                path: "a".into(),
                dc: None,
            },
            Data::Key(Some("1".into())),
        );
        snapshot.insert(
            Dependency::Key {
                path: "b".into(),
                dc: None,
            },
            Data::Key(None),
        );
        snapshot.insert(
            Dependency::Tree {
                prefix: "t".into(),
                dc: None,
            },
            Data::Tree(vec![KvEntry {
                key: "x".into(),
                value: "y".into(),
                ..KvEntry::default()
            }]),
        );
        snapshot.insert(
            Dependency::Keys {
                prefix: "t".into(),
                dc: None,
            },
            Data::Keys(vec!["t/x".into()]),
        );
        snapshot.insert(
            Dependency::CatalogServices { dc: None },
            Data::Services(vec![
                ServiceSummary {
                    name: "api".into(),
                    tags: vec!["public".into()],
                },
                ServiceSummary {
                    name: "db".into(),
                    tags: vec![],
                },
            ]),
        );
        snapshot.insert(
            Dependency::Datacenters,
            Data::Datacenters(vec!["dc1".into()]),
        );
        let out = render(
            "{{ key(path=\"a\") }} {{ key_or_default(path=\"b\", default=\"d\") }} \
             {% for e in tree(prefix=\"t\") %}{{ e.key }}={{ e.value }}{% endfor %} {{ keys(prefix=\"t\") | join(sep=\",\") }} \
             {% for s in services() %}{{ s.name }};{% endfor %} {% for s in services(tag=\"public\") %}{{ s.name }}{% endfor %} \
             {{ datacenters() | join(sep=\",\") }}",
            snapshot,
        );
        assert_eq!(out.text, "1 d x=y t/x api;db; api dc1");
        assert!(out.missing.is_empty(), "{:?}", out.missing);
    }

    #[test]
    fn env_reads_the_environment_with_an_optional_default() {
        let out = render(
            "{{ env(name=\"PATH\") != \"\" }} {{ env(name=\"CONSUL_RENDER_SURELY_UNSET\", default=\"d\") }}",
            Snapshot::default(),
        );
        assert_eq!(out.text, "true d");
        let err = Template::parse(
            "t.tera",
            "x\n{{ env(name=\"CONSUL_RENDER_SURELY_UNSET\") }}",
        )
        .unwrap()
        .render(&Arc::new(Snapshot::default()))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("CONSUL_RENDER_SURELY_UNSET is not set"),
            "{err}"
        );
        assert!(err.location.starts_with("t.tera:2:"), "{}", err.location);
    }

    #[test]
    fn syntax_errors_name_file_line_and_column_with_the_source_line() {
        let err = match Template::parse(
            "templates/x.tera",
            "upstream a {\n  {% for i in service(name=\"web\") %}\n  {{ i.address }\n",
        ) {
            Err(e) => e,
            Ok(_) => panic!("parsed a broken template"),
        };
        assert_eq!(err.location, "templates/x.tera:3:16");
        assert!(err.to_string().contains("3 |   {{ i.address }"), "{err}");
        assert!(err.to_string().contains('^'), "{err}");
    }

    #[test]
    fn render_errors_name_file_line_and_column() {
        let template = Template::parse("t.tera", "ok\n{{ service() }}").unwrap();
        let err = template.render(&Arc::new(Snapshot::default())).unwrap_err();
        assert!(err.location.starts_with("t.tera:2:"), "{err}");
        assert!(err.message.contains("name"), "{err}");
    }

    #[test]
    fn denied_functions_fail_when_called_and_tera_s_own_stay() {
        let template = |patterns: &[&str], source: &str| {
            let options = Options {
                denylist: Denylist::new(patterns.iter().map(|p| p.to_string()).collect()),
                ..Options::default()
            };
            Template::parse_with("t.tera", source, &Syntax::for_path("t.tera"), &options)
                .unwrap()
                .render(&Arc::new(Snapshot::default()))
        };
        let error = template(&["env"], "ok\n{{ env(name=\"HOME\") }}").unwrap_err();
        assert!(error.location.starts_with("t.tera:2:"), "{error}");
        assert_eq!(error.message, "error calling env: function is disabled");
        let error =
            template(&["key*"], "{{ key_or_default(path=\"a\", default=\"d\") }}").unwrap_err();
        assert_eq!(
            error.message,
            "error calling key_or_default: function is disabled"
        );
        // Only called functions fail, and Tera's own are not consul-render's
        // to deny.
        let rendered = template(
            &["*"],
            "{% if false %}{{ env(name=\"HOME\") }}{% endif %}{% for i in range(end=2) %}{{ i }}{% endfor %}",
        )
        .unwrap();
        assert_eq!(rendered.text, "01");
        assert!(rendered.used.is_empty());
    }

    #[test]
    fn output_is_not_html_escaped() {
        let mut snapshot = Snapshot::default();
        snapshot.insert(
            Dependency::Key {
                path: "a".into(),
                dc: None,
            },
            Data::Key(Some("<&>\"'".into())),
        );
        assert_eq!(render("{{ key(path=\"a\") }}", snapshot).text, "<&>\"'");
    }
}
