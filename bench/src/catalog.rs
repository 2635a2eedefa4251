//! The bench's model of what it has put in Consul: S services of I
//! instances on the agent's node, each with a TTL check, and the sequence of
//! changes the latency phase makes (check fails, check passes, an instance
//! leaves, it comes back), spread round-robin over the services. From the
//! model comes the exact nginx config both tools must write, so "the file
//! holds the new content" is a byte comparison. It does no I/O: `consul`
//! sends what this describes.

use std::fmt::Write as _;

/// The address every instance registers with.
const ADDRESS: &str = "127.0.0.1";

/// The first instance port; instance n of the catalog gets `FIRST_PORT + n`.
const FIRST_PORT: u32 = 20_000;

/// The placeholder server of an upstream without a passing instance: nginx
/// refuses an empty upstream.
pub const DOWN_SERVER: &str = "127.0.0.1:1 down";

/// How long an instance's TTL check stays passing without a refresh: longer
/// than any run, so only the bench changes health.
const CHECK_TTL: &str = "2h";

/// One service instance as the bench has left it.
#[derive(Debug, Clone)]
struct InstanceState {
    id: String,
    port: u16,
    registered: bool,
    passing: bool,
}

impl InstanceState {
    fn check_id(&self) -> String {
        format!("check:{}", self.id)
    }
}

#[derive(Debug, Clone)]
struct Service {
    name: String,
    instances: Vec<InstanceState>,
    /// How many changes this service has had: picks the next one.
    changes: usize,
}

/// What a change does to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Its check goes critical (it leaves the passing set).
    Fail,
    /// Its check goes passing again.
    Pass,
    /// The instance is deregistered.
    Deregister,
    /// The instance is registered (with a passing check).
    Register,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Fail => "fail",
            ChangeKind::Pass => "pass",
            ChangeKind::Deregister => "deregister",
            ChangeKind::Register => "register",
        }
    }
}

/// One write to the agent's API, described well enough to send it.
#[derive(Debug, Clone)]
pub struct Change {
    pub kind: ChangeKind,
    pub service: String,
    pub method: &'static str,
    pub path: String,
    /// Consul's metric label for the route (see `requests`).
    pub label: &'static str,
    pub body: Option<String>,
}

/// Every service, sorted by name, and their instances, sorted by id (all
/// instances are on one node, and both tools sort by node, then id).
#[derive(Debug, Clone)]
pub struct Catalog {
    services: Vec<Service>,
    /// Which service the next change goes to.
    next: usize,
}

impl Catalog {
    /// `services` services named `svc-001`… with `instances` passing
    /// instances each, all registered.
    pub fn new(services: usize, instances: usize) -> Catalog {
        let service_width = digits(services);
        let instance_width = digits(instances);
        let services = (0..services)
            .map(|s| {
                let name = format!("svc-{:0service_width$}", s + 1);
                let instances = (0..instances)
                    .map(|i| {
                        let n = u32::try_from(s * instances + i).expect("instance count fits u32");
                        InstanceState {
                            id: format!("{name}-{:0instance_width$}", i + 1),
                            port: u16::try_from(FIRST_PORT + n)
                                .expect("Options limits the catalog to ports below 65536"),
                            registered: true,
                            passing: true,
                        }
                    })
                    .collect();
                Service {
                    name,
                    instances,
                    changes: 0,
                }
            })
            .collect();
        Catalog { services, next: 0 }
    }

    /// The largest catalog whose ports all fit in a u16.
    pub fn max_instances() -> usize {
        (u32::from(u16::MAX) - FIRST_PORT) as usize
    }

    /// How many services have at least one registered instance (a service
    /// whose last instance is deregistered leaves Consul's catalog).
    pub fn service_count(&self) -> usize {
        self.services.iter().filter(|s| is_listed(s)).count()
    }

    /// How many instances are registered and passing.
    pub fn passing_count(&self) -> usize {
        self.instances()
            .filter(|i| i.registered && i.passing)
            .count()
    }

    /// The name of service `index` (by sorted position).
    #[cfg(test)]
    fn service_name(&self, index: usize) -> &str {
        &self.services[index].name
    }

    /// The registrations that create the whole catalog.
    pub fn registrations(&self) -> Vec<Change> {
        self.services
            .iter()
            .flat_map(|s| s.instances.iter().map(|i| register(&s.name, i)))
            .collect()
    }

    /// The config both templates must render for this catalog:
    /// `upstream <service> { server <address>:<port>; … }` per service, with
    /// only passing instances, and a `down` placeholder when none passes.
    /// A service without registered instances is not in Consul's catalog,
    /// so it has no upstream.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for service in self.services.iter().filter(|s| is_listed(s)) {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "upstream {} {{", service.name);
            let mut any = false;
            for i in service
                .instances
                .iter()
                .filter(|i| i.registered && i.passing)
            {
                let _ = writeln!(out, "    server {ADDRESS}:{};", i.port);
                any = true;
            }
            if !any {
                let _ = writeln!(out, "    server {DOWN_SERVER};");
            }
            out.push_str("}\n");
        }
        out
    }

    /// The next change of the latency phase, applied to the model. Services
    /// take turns; each cycles through: instance j fails, j passes, instance
    /// j+1 is deregistered, j+1 is registered again (j moving on each cycle).
    /// Every change alters the rendered config.
    pub fn next_change(&mut self) -> Change {
        let index = self.next;
        self.next = (self.next + 1) % self.services.len();
        self.next_change_of(index)
    }

    /// The next change of service `index` alone (its own cycle of fail,
    /// pass, deregister, register), applied to the model.
    pub fn next_change_of(&mut self, index: usize) -> Change {
        let service = &mut self.services[index];
        let step = service.changes;
        service.changes += 1;
        let count = service.instances.len();
        let cycle = step / 4;
        let (kind, i) = match step % 4 {
            0 => (ChangeKind::Fail, cycle % count),
            1 => (ChangeKind::Pass, cycle % count),
            2 => (ChangeKind::Deregister, (cycle + 1) % count),
            _ => (ChangeKind::Register, (cycle + 1) % count),
        };
        set(service, i, kind)
    }

    /// Changes that make every instance of service `index` fail (`passing`
    /// false) or pass again, applied to the model.
    pub fn set_service_passing(&mut self, index: usize, passing: bool) -> Vec<Change> {
        let kind = if passing {
            ChangeKind::Pass
        } else {
            ChangeKind::Fail
        };
        let service = &mut self.services[index];
        (0..service.instances.len())
            .map(|i| set(service, i, kind))
            .collect()
    }

    /// The first instance of service `service` that is registered and
    /// passing.
    pub fn healthy_instance_of(&self, service: usize) -> Option<usize> {
        self.services[service]
            .instances
            .iter()
            .position(|i| i.registered && i.passing)
    }

    /// A change that wakes service `service`'s blocking queries without
    /// changing what the templates render: instance `instance`, which must
    /// be failing, is deregistered if registered, else registered again
    /// (failing). The service must keep another registered instance.
    pub fn no_news_change(&mut self, service: usize, instance: usize) -> Change {
        let service = &mut self.services[service];
        let state = &service.instances[instance];
        assert!(
            !state.passing,
            "instance {instance} of {} must be failing",
            service.name
        );
        assert!(
            service
                .instances
                .iter()
                .enumerate()
                .any(|(i, x)| i != instance && x.registered),
            "{} needs another registered instance",
            service.name
        );
        if state.registered {
            set(service, instance, ChangeKind::Deregister)
        } else {
            let state = &mut service.instances[instance];
            state.registered = true;
            register(&service.name, state)
        }
    }

    /// The changes that take service `index` to the end of its current
    /// cycle (every instance registered and passing again), applied to the
    /// model.
    pub fn complete_cycle(&mut self, index: usize) -> Vec<Change> {
        let mut out = Vec::new();
        while !self.services[index].changes.is_multiple_of(4) {
            out.push(self.next_change_of(index));
        }
        out
    }

    /// Whether instance `instance` of service `service` is registered and
    /// passing.
    pub fn is_passing(&self, service: usize, instance: usize) -> bool {
        let i = &self.services[service].instances[instance];
        i.registered && i.passing
    }

    /// How many services the model holds (listed in Consul or not).
    pub fn service_total(&self) -> usize {
        self.services.len()
    }

    /// Makes instance `instance` of service `service` fail (`passing`
    /// false) or pass again, applied to the model. It must be registered.
    pub fn set_instance_passing(
        &mut self,
        service: usize,
        instance: usize,
        passing: bool,
    ) -> Change {
        let kind = if passing {
            ChangeKind::Pass
        } else {
            ChangeKind::Fail
        };
        let service = &mut self.services[service];
        assert!(
            service.instances[instance].registered,
            "instance {instance} of {} is not registered",
            service.name
        );
        set(service, instance, kind)
    }

    fn instances(&self) -> impl Iterator<Item = &InstanceState> {
        self.services.iter().flat_map(|s| s.instances.iter())
    }
}

/// Applies `kind` to instance `i` of `service` and returns the request.
fn set(service: &mut Service, i: usize, kind: ChangeKind) -> Change {
    let instance = &mut service.instances[i];
    match kind {
        ChangeKind::Fail | ChangeKind::Pass => {
            let passing = kind == ChangeKind::Pass;
            instance.passing = passing;
            let verb = if passing { "pass" } else { "fail" };
            Change {
                kind,
                service: service.name.clone(),
                method: "PUT",
                path: format!("/v1/agent/check/{verb}/{}", instance.check_id()),
                label: if passing {
                    "v1_agent_check_pass_"
                } else {
                    "v1_agent_check_fail_"
                },
                body: None,
            }
        }
        ChangeKind::Deregister => {
            instance.registered = false;
            Change {
                kind,
                service: service.name.clone(),
                method: "PUT",
                path: format!("/v1/agent/service/deregister/{}", instance.id),
                label: "v1_agent_service_deregister_",
                body: None,
            }
        }
        ChangeKind::Register => {
            instance.registered = true;
            instance.passing = true;
            register(&service.name, instance)
        }
    }
}

/// The registration of `instance` of `service`, with a TTL check in the
/// state the model gives it.
fn register(service: &str, instance: &InstanceState) -> Change {
    let status = if instance.passing {
        "passing"
    } else {
        "critical"
    };
    let body = serde_json::json!({
        "ID": instance.id,
        "Name": service,
        "Address": ADDRESS,
        "Port": instance.port,
        "Check": {
            "CheckID": instance.check_id(),
            "Name": format!("TTL check of {}", instance.id),
            "TTL": CHECK_TTL,
            "Status": status,
        },
    });
    Change {
        kind: ChangeKind::Register,
        service: service.to_string(),
        method: "PUT",
        path: "/v1/agent/service/register".to_string(),
        label: "v1_agent_service_register",
        body: Some(body.to_string()),
    }
}

/// Whether Consul lists `service` in `/v1/catalog/services`.
fn is_listed(service: &Service) -> bool {
    service.instances.iter().any(|i| i.registered)
}

/// How many decimal digits `n` has (at least 1).
fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_passing_instances_per_service() {
        let catalog = Catalog::new(2, 2);
        assert_eq!(
            catalog.render(),
            "upstream svc-1 {\n    server 127.0.0.1:20000;\n    server 127.0.0.1:20001;\n}\n\
             upstream svc-2 {\n    server 127.0.0.1:20002;\n    server 127.0.0.1:20003;\n}\n"
        );
    }

    #[test]
    fn an_upstream_without_passing_instances_gets_a_down_server() {
        let mut catalog = Catalog::new(1, 2);
        catalog.set_service_passing(0, false);
        assert_eq!(
            catalog.render(),
            "upstream svc-1 {\n    server 127.0.0.1:1 down;\n}\n"
        );
    }

    #[test]
    fn a_service_without_instances_leaves_the_config() {
        let mut catalog = Catalog::new(2, 1);
        catalog.next_change();
        catalog.next_change();
        catalog.next_change();
        catalog.next_change();
        let change = catalog.next_change();
        assert_eq!(change.kind, ChangeKind::Deregister);
        assert_eq!(catalog.service_count(), 1);
        assert_eq!(
            catalog.render(),
            "upstream svc-2 {\n    server 127.0.0.1:20001;\n}\n"
        );
    }

    #[test]
    fn names_sort_like_numbers() {
        let catalog = Catalog::new(12, 1);
        assert_eq!(catalog.service_name(0), "svc-01");
        assert_eq!(catalog.service_name(11), "svc-12");
    }

    #[test]
    fn every_change_alters_the_rendered_config_and_services_take_turns() {
        for instances in 1..=3 {
            let mut catalog = Catalog::new(3, instances);
            let mut before = catalog.render();
            for n in 0..48 {
                let change = catalog.next_change();
                assert_eq!(change.service, catalog.service_name(n % 3));
                let after = catalog.render();
                assert_ne!(before, after, "change {n} ({change:?}) changed nothing");
                before = after;
            }
        }
    }

    #[test]
    fn one_service_cycles_through_every_kind_and_back() {
        let mut catalog = Catalog::new(3, 3);
        let start = catalog.render();
        let kinds: Vec<ChangeKind> = (0..12).map(|_| catalog.next_change_of(1).kind).collect();
        assert_eq!(
            &kinds[..4],
            &[
                ChangeKind::Fail,
                ChangeKind::Pass,
                ChangeKind::Deregister,
                ChangeKind::Register
            ]
        );
        assert_eq!(catalog.render(), start);
    }

    #[test]
    fn a_change_without_news_leaves_the_rendering_alone() {
        let mut catalog = Catalog::new(2, 2);
        catalog.set_instance_passing(0, 1, false);
        let before = catalog.render();
        let out = catalog.no_news_change(0, 1);
        assert_eq!(out.kind, ChangeKind::Deregister);
        assert_eq!(catalog.render(), before);
        let back = catalog.no_news_change(0, 1);
        assert_eq!(back.kind, ChangeKind::Register);
        assert!(back.body.as_deref().is_some_and(|b| b.contains("critical")));
        assert_eq!(catalog.render(), before);
    }

    #[test]
    fn a_healthy_instance_fails_and_passes() {
        let mut catalog = Catalog::new(2, 2);
        let i = catalog.healthy_instance_of(1).expect("all healthy");
        assert_eq!(i, 0);
        let change = catalog.set_instance_passing(1, i, false);
        assert_eq!(change.kind, ChangeKind::Fail);
        assert_eq!(catalog.healthy_instance_of(1), Some(1));
        catalog.set_instance_passing(1, i, true);
        assert_eq!(catalog.passing_count(), 4);
        assert_eq!(catalog.service_total(), 2);
    }

    #[test]
    fn the_change_cycle_returns_the_catalog_to_its_start() {
        let mut catalog = Catalog::new(2, 3);
        let start = catalog.render();
        for _ in 0..2 * 4 {
            catalog.next_change();
        }
        assert_eq!(catalog.render(), start);
        assert_eq!(catalog.passing_count(), 6);
    }
}
