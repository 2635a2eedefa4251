//! The `consul-render` binary: everything happens in [`consul_render::main`].

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(consul_render::main(std::env::args_os()))
}
