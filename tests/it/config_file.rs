//! `-config` files as consul-template users write them: templates with their
//! own settings, inline templates, rendered offline and live, and settings
//! consul-render refuses.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use testbed::ConsulAgent;

use crate::support::{Daemon, repo, run, wait_for_file, write};

const T: Duration = Duration::from_secs(20);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_config_file_s_templates_render_with_their_own_perms_and_backups() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private/default.conf");
    let private_bak = dir.path().join("private/default.conf.bak");
    let plain = dir.path().join("plain/default.conf");
    let plain_bak = dir.path().join("plain/default.conf.bak");
    let config = dir.path().join("consul-render.hcl");
    let source = repo().join("templates/default.conf.tera");
    write(
        &config,
        &format!(
            r#"
template {{
  source = "{source}"
  destination = "{private}"
  perms = 0600
  backup = true
  create_dest_dirs = true
}}

template {{
  source = "{source}"
  destination = "{plain}"
}}
"#,
            source = source.display(),
            private = private.display(),
            plain = plain.display(),
        ),
    );
    let config = config.display().to_string();
    let catalog = repo().join("examples/catalog.json").display().to_string();
    let render = |listen: &str| {
        run(
            &["-config", &config, "-catalog-file", &catalog],
            &[("APP_NAME", "tutum-nodejs-redis"), ("LISTEN", listen)],
            T,
        )
    };

    let first = render("8080");
    assert_eq!(first.code, 0, "{first:?}");
    let first_text = read(&private);
    assert!(first_text.contains("listen 8080 default;"), "{first_text}");
    assert!(
        first_text.contains("upstream tutum-nodejs-redis {"),
        "{first_text}"
    );
    assert_eq!(read(&plain), first_text);
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&plain), 0o644);
    assert!(!private_bak.exists() && !plain_bak.exists());

    let second = render("8081");
    assert_eq!(second.code, 0, "{second:?}");
    assert!(read(&private).contains("listen 8081 default;"));
    assert!(read(&plain).contains("listen 8081 default;"));
    assert_eq!(read(&private_bak), first_text);
    assert_eq!(mode(&private), 0o600);
    assert!(!plain_bak.exists(), "backup is only on where asked for");
}

#[test]
fn a_consul_template_setting_it_does_not_support_exits_15_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vault.hcl");
    write(
        &config,
        "template {\n  source = \"in.tera\"\n  destination = \"out.conf\"\n}\n\nvault {\n  address = \"https://vault:8200\"\n}\n",
    );
    let done = run(&[&format!("-config={}", config.display())], &[], T);
    assert_eq!(done.code, 15, "{done:?}");
    assert_eq!(
        done.stderr.trim_end(),
        format!(
            "consul-render: config file {}, line 6: vault is a consul-template setting that consul-render does not support",
            config.display()
        )
    );
}

#[test]
fn a_file_outside_the_sandbox_fails_its_template_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Messages name real paths; the temporary directory may sit behind a link.
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let sandbox = root.join("snippets");
    write(&sandbox.join("upstreams.conf"), "server 10.0.0.1:80;\n");
    write(&root.join("secret.txt"), "not for nginx\n");
    std::os::unix::fs::symlink(root.join("secret.txt"), sandbox.join("escape")).unwrap();
    let (s, r) = (sandbox.display(), root.display());
    // (name, template text, where `file` leads if it is refused)
    let cases = [
        (
            "inside.ctmpl",
            format!("{{{{ file \"{s}/upstreams.conf\" }}}}"),
            None,
        ),
        (
            "inside.tera",
            format!("{{{{ file(path=\"{s}/upstreams.conf\") }}}}"),
            None,
        ),
        (
            "link.ctmpl",
            format!("{{{{ file \"{s}/escape\" }}}}"),
            Some(format!("'{s}/escape'")),
        ),
        (
            "dotdot.tera",
            format!("{{{{ file(path=\"{s}/../secret.txt\") }}}}"),
            Some(format!("'{s}/../secret.txt'")),
        ),
    ];
    let mut config = String::new();
    for (name, text, _) in &cases {
        write(&root.join(name), text);
        config.push_str(&format!(
            "template {{\n  source = \"{r}/{name}\"\n  destination = \"{r}/out/{name}\"\n  sandbox_path = \"{s}\"\n}}\n"
        ));
    }
    let config_path = root.join("sandboxed.hcl");
    write(&config_path, &config);
    let catalog = repo().join("examples/catalog.json").display().to_string();
    let done = run(
        &[
            &format!("-config={}", config_path.display()),
            "-catalog-file",
            &catalog,
        ],
        &[],
        T,
    );

    assert_eq!(done.code, 14, "{done:?}");
    for (name, _, refused) in &cases {
        let out = root.join("out").join(name);
        match refused {
            None => assert_eq!(read(&out), "server 10.0.0.1:80;\n", "{name}"),
            Some(path) => {
                assert!(!out.exists(), "{name} was written");
                let message =
                    format!("{path} is outside of sandbox {s} (it resolves to {r}/secret.txt)");
                assert!(
                    done.stderr.contains(&format!("{r}/{name}:1:"))
                        && done.stderr.contains(&message),
                    "{name}: wanted its location and {message:?}\n{done:?}"
                );
            }
        }
    }
    assert!(!done.stderr.contains("not for nginx"), "{done:?}");
}

#[test]
fn inline_templates_render_offline_in_either_engine() {
    let dir = tempfile::tempdir().unwrap();
    let (go, tera) = (dir.path().join("go.conf"), dir.path().join("tera.conf"));
    let config = dir.path().join("inline.hcl");
    write(
        &config,
        &format!(
            r#"
template {{
  contents = "{{{{ range service \"tutum-nodejs-redis\" }}}}server {{{{ .Address }}}}:{{{{ .Port }}}};\n{{{{ end }}}}"
  destination = "{go}"
}}
template {{
  contents = <<EOT
{{% for i in service(name="tutum-nodejs-redis") %}}server {{{{ i.endpoint }}}};
{{% endfor -%}}
EOT
  destination = "{tera}"
  engine = "tera"
}}
"#,
            go = go.display(),
            tera = tera.display(),
        ),
    );
    let catalog = repo().join("examples/catalog.json").display().to_string();
    let done = run(
        &[
            &format!("-config={}", config.display()),
            "-catalog-file",
            &catalog,
        ],
        &[],
        T,
    );
    assert_eq!(done.code, 0, "{done:?}");
    let servers =
        "server 10.132.1.191:32777;\nserver 10.132.1.191:32778;\nserver 10.132.14.17:32772;\n";
    assert_eq!(read(&go), servers);
    assert_eq!(read(&tera), servers);
}

#[test]
fn an_inline_template_has_nothing_to_reread_and_follows_consul() {
    let consul = ConsulAgent::dev();
    consul.kv_put("greeting", "hello");
    let dir = tempfile::tempdir().unwrap();
    let (source, from_file, inline) = (
        dir.path().join("t.ctmpl"),
        dir.path().join("file.conf"),
        dir.path().join("inline.conf"),
    );
    write(&source, "file {{ key \"greeting\" }}\n");
    let config = dir.path().join("c.hcl");
    write(
        &config,
        &format!(
            "template {{\n  source = \"{}\"\n  destination = \"{}\"\n}}\n\
             template {{\n  contents = \"inline {{{{ key \\\"greeting\\\" }}}}\\n\"\n  destination = \"{}\"\n}}\n",
            source.display(),
            from_file.display(),
            inline.display()
        ),
    );
    let mut daemon = Daemon::start(
        &[
            &format!("-consul-addr={}", consul.http_addr()),
            &format!("-config={}", config.display()),
        ],
        &[],
    );
    wait_for_file(&inline, "the inline render", T, |t| t == "inline hello\n");
    wait_for_file(&from_file, "the file render", T, |t| t == "file hello\n");
    // SIGHUP re-reads the file template only.
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("template reloaded", 1, T);
    consul.kv_put("greeting", "again");
    wait_for_file(&inline, "the changed key", T, |t| t == "inline again\n");
    daemon.assert_running();
    let log = daemon.log();
    assert_eq!(log.matches("template reloaded").count(), 1, "{log}");
    assert!(!log.contains("(dynamic); keeping"), "{log}");
}
