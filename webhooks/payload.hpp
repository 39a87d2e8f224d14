// webhooks/payload — which durable journal records are webhook events, and the JSON body
// a receiver gets for one. Everything comes from the record and from fixed facts of the
// read store (a slot's doctor and times, a doctor's clinic, a booking's patient name), so
// a record renders the same whenever it is delivered, also again after a restart.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "journal/codec.hpp"
#include "sequencer/read_store.hpp"

namespace slotd {

struct WebhookEvent {
  WebhookEventType type = WebhookEventType::booking_held;
  SlotChange change;  // slot, doctor, clinic, booking and statuses right after the event
};

// The webhook event a durable record is: SlotHeld → booking.held, BookingConfirmed →
// booking.confirmed, BookingExpired → booking.failed, BookingCancelled →
// booking.cancelled, SlotCreated → slot.created, SlotClosed → slot.closed; nullopt for
// every other record. The record must be durable and published (seq <= reads.as_of_seq()).
std::optional<WebhookEvent> webhook_event_of(const JournalRecord& record, const ReadStore& reads);

// True when the endpoint subscribed to the event's type and, if it names a clinic, the
// event is that clinic's.
bool webhook_wants(const WebhookInfo& webhook, const WebhookEvent& event);

// The id receivers dedupe by: the same for every delivery of the same event.
std::string webhook_event_id(std::uint64_t seq);

// {"id","type","seq","occurredAt","data":{"bookingId"?,"slotId","doctorId","clinicId",
// "status","start","end","patientName"?}}: "status" is the booking's status after a booking
// event, the slot's after a slot event; "patientName" only when include_patient.
std::string webhook_body(const JournalRecord& record, const WebhookEvent& event,
                         const ReadStore& reads, bool include_patient);

}  // namespace slotd
