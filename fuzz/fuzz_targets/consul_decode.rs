//! Any bytes as Consul's reply body, for every kind of dependency, with
//! status 200 and 404: `decode` must never panic, and the health, catalog
//! and node data that comes out must keep the data model's safety promise.
//!
//! The same bytes, read as structured input, also become a JSON array of
//! hostile health entries, so that the fuzzer reaches validation and not
//! only JSON syntax errors. For those the expected outcome is known, so the
//! target also checks that every entry that is safe is kept.

#![no_main]

use std::sync::LazyLock;

use consul_render::consul::change::decode;
use consul_render::consul::transport::Reply;
use consul_render::consul::{Data, Dependency, HealthQuery};
use consul_render_fuzz::{
    HostileEntry, assert_instances_safe, assert_node_detail_safe, assert_nodes_safe,
    assert_services_safe, health_body, is_address, is_safe_token,
};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

static HEALTH: LazyLock<Dependency> =
    LazyLock::new(|| Dependency::Health(HealthQuery::new("web", &[], None, true)));

/// One dependency of every kind (KV ones decode 404 as data).
static DEPENDENCIES: LazyLock<Vec<Dependency>> = LazyLock::new(|| {
    vec![
        HEALTH.clone(),
        Dependency::Health(HealthQuery::new(
            "web",
            &["v1".to_owned()],
            Some("dc2"),
            false,
        )),
        Dependency::CatalogServices { dc: None },
        Dependency::CatalogNodes { dc: None },
        Dependency::CatalogNode {
            name: Some("n1".to_owned()),
            dc: None,
        },
        Dependency::Datacenters,
        Dependency::Key {
            path: "app/config".to_owned(),
            dc: None,
        },
        Dependency::Keys {
            prefix: "app/".to_owned(),
            dc: None,
        },
        Dependency::Tree {
            prefix: "app".to_owned(),
            dc: None,
        },
    ]
});

/// Decodes `body` for `dependency` and checks whatever data comes out.
fn decode_and_check(dependency: &Dependency, status: u16, body: &[u8]) -> Option<Data> {
    let reply = Reply {
        status,
        index: None,
        body: body.to_vec(),
        filtered_by_acls: false,
    };
    let (data, _rejections) = decode(dependency, &reply).ok()?;
    match &data {
        Data::Instances(list) => assert_instances_safe(list),
        Data::Services(list) => assert_services_safe(list),
        Data::Nodes(list) => assert_nodes_safe(list),
        Data::Node(detail) => {
            if let Some(detail) = detail {
                assert_node_detail_safe(detail);
            }
        }
        Data::Datacenters(list) => {
            for dc in list {
                assert!(is_safe_token(dc, false), "unsafe datacenter {dc:?}");
            }
        }
        Data::Key(_) | Data::Keys(_) | Data::Tree(_) | Data::File(_) => {}
    }
    Some(data)
}

/// Whether the data model must keep this entry: every identity field is
/// safe (see `consul::data`), so nothing justifies dropping it.
fn must_keep(entry: &HostileEntry) -> bool {
    let model = entry.to_model();
    let (node, service) = (&model.node, &model.service);
    let address = if service.address.is_empty() {
        &node.address
    } else {
        &service.address
    };
    is_safe_token(&service.id, false)
        && is_safe_token(&service.service, false)
        && is_safe_token(&node.node, false)
        && is_safe_token(&node.datacenter, true)
        && is_address(address)
        && (node.address.is_empty() || is_address(&node.address))
        && (1..=65535).contains(&service.port)
}

fuzz_target!(|data: &[u8]| {
    for dependency in DEPENDENCIES.iter() {
        for status in [200, 404] {
            decode_and_check(dependency, status, data);
        }
    }

    let Ok(entries) = Vec::<HostileEntry>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let body = health_body(&entries);
    let Some(Data::Instances(kept)) = decode_and_check(&HEALTH, 200, &body) else {
        panic!("a well-formed health reply was refused");
    };
    let expected = entries.iter().filter(|e| must_keep(e)).count();
    assert_eq!(kept.len(), expected, "safe instances were dropped");
});
