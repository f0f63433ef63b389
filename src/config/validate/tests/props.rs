//! `validate` never panics on arbitrary specs, and what it accepts holds the invariants.

use proptest::prelude::*;

use super::*;

fn arb_duration() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "([0-9]{1,3}(ms|s|m|h)){1,2}".prop_map(Some),
        "[0-9a-z ]{0,6}".prop_map(Some),
        Just(Some("99999999999999999999h".to_owned())),
    ]
}

fn arb_spec() -> impl Strategy<Value = api::BackendPoolSpec> {
    let listener = (
        prop_oneof![0u32..10, 8080u32..8083, any::<u32>()],
        proptest::option::of(proptest::collection::vec(
            prop_oneof![
                Just("shop.example".to_owned()),
                Just("*.example".to_owned()),
                "[a-zA-Z0-9.*:_-]{0,12}"
            ],
            0..3,
        )),
        proptest::option::of(prop_oneof![
            Just("/".to_owned()),
            Just("/api/".to_owned()),
            "[/a-z?]{0,6}"
        ]),
        proptest::option::of((
            proptest::option::of("[a-z]{0,3}"),
            proptest::option::of("[a-z]{0,3}"),
            proptest::option::of("[a-z]{0,3}"),
        )),
    )
        .prop_map(|(port, hosts, path_prefix, tls)| api::ListenerSpec {
            port,
            hosts,
            path_prefix,
            tls: tls.map(|(secret_name, cert_file, key_file)| api::TlsSpec {
                secret_name,
                cert_file,
                key_file,
            }),
            proxy_protocol: None,
            match_: None,
        });
    let endpoints = proptest::option::of(proptest::collection::vec(
        (
            prop_oneof![
                Just("127.0.0.1:9001".to_owned()),
                Just("[::1]:0".to_owned()),
                "[0-9.:]{0,16}"
            ],
            proptest::option::of(prop_oneof![0u32..3, 999u32..1002, any::<u32>()]),
        )
            .prop_map(|(address, weight)| api::EndpointSpec { address, weight }),
        0..4,
    ));
    let algorithm = prop_oneof![
        Just(api::AlgorithmName::RoundRobin),
        Just(api::AlgorithmName::ConsistentHash),
        Just(api::AlgorithmName::Random),
    ];
    let hash_key = proptest::option::of(
        (
            proptest::option::of("[a-zA-Z -]{0,5}"),
            proptest::option::of("[a-z;]{0,4}"),
            proptest::option::of(any::<bool>()),
        )
            .prop_map(|(header, cookie, client_ip)| api::HashKeySpec {
                header,
                cookie,
                client_ip,
            }),
    );
    let health = proptest::option::of(
        (
            arb_duration(),
            arb_duration(),
            proptest::option::of(proptest::collection::vec("[0-9-]{0,8}", 0..3)),
            proptest::option::of(any::<u32>()),
            proptest::option::of(0u32..3),
        )
            .prop_map(
                |(interval, timeout, expected_statuses, port, healthy_threshold)| {
                    api::HealthCheckSpec {
                        interval,
                        timeout,
                        expected_statuses,
                        port,
                        healthy_threshold,
                        ..Default::default()
                    }
                },
            ),
    );
    let retry = proptest::option::of(
        (
            arb_duration(),
            arb_duration(),
            proptest::option::of(any::<f64>()),
            proptest::option::of(0u32..20),
        )
            .prop_map(|(base, max, ratio, attempts)| api::RetrySpec {
                attempts,
                backoff: Some(api::BackoffSpec { base, max }),
                budget: Some(api::RetryBudgetSpec {
                    ratio,
                    min_per_second: None,
                }),
                retry_on: None,
            }),
    );
    (
        any::<bool>(),
        listener,
        endpoints,
        algorithm,
        hash_key,
        health,
        retry,
        arb_duration(),
        proptest::option::of(prop_oneof![
            Just(api::AffinityType::Cookie),
            Just(api::AffinityType::ClientIp),
        ]),
    )
        .prop_map(
            |(
                tcp,
                listener,
                endpoints,
                algorithm,
                hash_key,
                health_check,
                retry,
                drain,
                affinity,
            )| {
                api::BackendPoolSpec {
                    protocol: if tcp {
                        api::Protocol::Tcp
                    } else {
                        api::Protocol::Http
                    },
                    listener,
                    endpoints,
                    algorithm,
                    hash_key,
                    health_check,
                    retry,
                    drain_timeout: drain,
                    session_affinity: affinity.map(|kind| api::SessionAffinitySpec {
                        kind: Some(kind),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #[test]
    fn validate_never_panics_and_accepted_sets_hold_the_invariants(
        specs in proptest::collection::vec(
            (prop_oneof![Just("a".to_owned()), Just("b".to_owned()), "[a-zA-Z0-9/-]{0,5}"], arb_spec()),
            0..4,
        ),
        kubernetes in any::<bool>(),
    ) {
        let pools: Vec<BackendPool> = specs
            .into_iter()
            .map(|(name, spec)| {
                let mut pool = BackendPool::new(&name, spec);
                if name.is_empty() {
                    pool.metadata.name = None;
                }
                pool
            })
            .collect();
        let source = if kubernetes { Source::Kubernetes } else { file() };
        // Standalone needs `endpoints` in every document (an empty list is allowed: 503).
        let all_list_endpoints = pools.iter().all(|p| p.spec.endpoints.is_some());
        match validate(&source, &pools) {
            Ok(set) => {
                prop_assert!(kubernetes || all_list_endpoints);
                prop_assert!(set.pools.windows(2).all(|w| w[0].name < w[1].name));
                for p in &set.pools {
                    prop_assert!(p.listener.port > 0);
                    prop_assert!(p.listener.path_prefix.starts_with('/'));
                    prop_assert!(p.endpoints.iter().all(|e| (1..=1000).contains(&e.weight) && e.address.port() > 0));
                    if let Some(r) = &p.retry {
                        prop_assert!(r.backoff_base <= r.backoff_max);
                        prop_assert!((0.0..=1.0).contains(&r.budget_ratio));
                    }
                }
            }
            Err(e) => {
                prop_assert!(!e.0.is_empty());
                for err in &e.0 {
                    prop_assert!(err.pool.is_some());
                    prop_assert!(err.message.contains(": pool ") || err.message.starts_with("pool "));
                }
            }
        }
    }
}
