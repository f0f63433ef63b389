//! The status of GatewayClasses, Gateways and routes, computed from the translation's
//! reports (pure): conditions carry the object's generation as `observedGeneration` and
//! keep their `lastTransitionTime` while their status does not change; conditions and
//! route parents written by other controllers are kept.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::condition::Cond;
use super::listeners::GatewayView;
use super::types::{
    GatewayClassStatus, GatewayStatus, GatewayStatusAddress, ListenerStatus, RouteParentStatus,
    RouteStatus,
};
use super::{CONTROLLER, ClassReport, RouteReport};
use crate::controller::events::{CONDITION_MESSAGE_MAX_BYTES, truncate_on_char_boundary};

/// Condition types this controller owns on Gateways and GatewayClasses.
const OWNED: [&str; 2] = ["Accepted", "Programmed"];

fn condition(c: &Cond, generation: Option<i64>, previous: &[Condition], now: &Time) -> Condition {
    let status = c.status_text();
    let last_transition_time = previous
        .iter()
        .find(|p| p.type_ == c.type_ && p.status == status)
        .map(|p| p.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: c.type_.to_owned(),
        status: status.to_owned(),
        reason: c.reason.to_owned(),
        message: truncate_on_char_boundary(&c.message, CONDITION_MESSAGE_MAX_BYTES).to_owned(),
        last_transition_time,
        observed_generation: generation,
    }
}

fn conditions(
    list: &[Cond],
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    list.iter()
        .map(|c| condition(c, generation, previous, now))
        .collect()
}

/// Keeps the conditions of `previous` whose type this controller does not own.
fn with_foreign(mut ours: Vec<Condition>, previous: &[Condition]) -> Vec<Condition> {
    for p in previous {
        if !OWNED.contains(&p.type_.as_str()) && !ours.iter().any(|c| c.type_ == p.type_) {
            ours.push(p.clone());
        }
    }
    ours
}

/// A GatewayClass of ours: `Accepted`.
pub fn class(
    report: &ClassReport,
    previous: Option<&GatewayClassStatus>,
    now: &Time,
) -> GatewayClassStatus {
    let previous = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ours = conditions(
        std::slice::from_ref(&report.accepted),
        report.generation,
        previous,
        now,
    );
    GatewayClassStatus {
        conditions: with_foreign(ours, previous),
    }
}

/// The Gateway-level conditions: `Accepted` (`ListenersNotValid` when some listener is
/// not) and `Programmed` (false when nothing is served, the data plane refused the
/// Gateway's ports — `refusal` — or no address is known).
pub fn gateway_conditions(
    view: &GatewayView,
    refusal: Option<&str>,
    has_address: bool,
) -> Vec<Cond> {
    let all_valid = view.listeners.iter().all(|l| {
        l.conditions
            .iter()
            .all(|c| (c.type_ == "Conflicted") != c.status)
    });
    let any_usable = view.listeners.iter().any(|l| l.attachable);
    let any_served = view.listeners.iter().any(|l| l.served);
    let accepted = match &view.refused {
        Some(c) => c.clone(),
        None if all_valid => Cond::yes("Accepted", "Accepted", "the Gateway is valid"),
        None if any_usable => Cond::yes(
            "Accepted",
            "ListenersNotValid",
            "some listeners are not valid (see status.listeners)",
        ),
        None => Cond::no(
            "Accepted",
            "ListenersNotValid",
            "no listener is valid (see status.listeners)",
        ),
    };
    let programmed = if view.refused.is_some() || !any_served {
        Cond::no("Programmed", "Invalid", "nothing of the Gateway is served")
    } else if let Some(why) = refusal {
        Cond::no("Programmed", "Invalid", why)
    } else if !has_address {
        Cond::no(
            "Programmed",
            "AddressNotAssigned",
            "no address is known yet (--publish-address, --publish-service or POD_IP)",
        )
    } else {
        Cond::yes("Programmed", "Programmed", "the Gateway is served")
    };
    vec![accepted, programmed]
}

/// A Gateway of ours.
pub fn gateway(
    view: &GatewayView,
    addresses: &[GatewayStatusAddress],
    refusal: Option<&str>,
    previous: Option<&GatewayStatus>,
    now: &Time,
) -> GatewayStatus {
    let generation = view.generation;
    let prev_conditions = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let prev_listeners = previous
        .and_then(|s| s.listeners.as_deref())
        .unwrap_or_default();
    let gw = gateway_conditions(view, refusal, !addresses.is_empty());
    let listeners = view
        .listeners
        .iter()
        .map(|l| {
            let prev = prev_listeners
                .iter()
                .find(|p| p.name == l.name)
                .map(|p| p.conditions.as_slice())
                .unwrap_or_default();
            let mut list = l.conditions.clone();
            if let Some(why) = refusal
                && l.served
            {
                super::condition::set(&mut list, Cond::no("Programmed", "Invalid", why));
            }
            ListenerStatus {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: l.attached,
                conditions: conditions(&list, generation, prev, now),
            }
        })
        .collect();
    GatewayStatus {
        addresses: Some(addresses.to_vec()),
        conditions: Some(with_foreign(
            conditions(&gw, generation, prev_conditions, now),
            prev_conditions,
        )),
        listeners: Some(listeners),
    }
}

/// A route with parents of ours: our entries replace ours, other controllers' stay.
pub fn route(report: &RouteReport, previous: Option<&RouteStatus>, now: &Time) -> RouteStatus {
    let prev = previous.map(|s| s.parents.as_slice()).unwrap_or_default();
    let mut parents: Vec<RouteParentStatus> = prev
        .iter()
        .filter(|p| p.controller_name != CONTROLLER)
        .cloned()
        .collect();
    for p in &report.parents {
        let before = prev
            .iter()
            .find(|x| x.controller_name == CONTROLLER && x.parent_ref == p.parent_ref)
            .map(|x| x.conditions.as_slice())
            .unwrap_or_default();
        parents.push(RouteParentStatus {
            parent_ref: p.parent_ref.clone(),
            controller_name: CONTROLLER.to_owned(),
            conditions: conditions(&p.conditions, report.generation, before, now),
        });
    }
    RouteStatus { parents }
}

/// A route status without this controller's entries, when it had any (its parents are no
/// longer Gateways of ours).
pub fn forget(previous: Option<&RouteStatus>) -> Option<RouteStatus> {
    let previous = previous?;
    if previous
        .parents
        .iter()
        .all(|p| p.controller_name != CONTROLLER)
    {
        return None;
    }
    Some(RouteStatus {
        parents: previous
            .parents
            .iter()
            .filter(|p| p.controller_name != CONTROLLER)
            .cloned()
            .collect(),
    })
}
