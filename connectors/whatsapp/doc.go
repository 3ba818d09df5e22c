// Package whatsapp is triage's connector to the WhatsApp Business Cloud
// API. It imports nothing of the module but schemas, so the daemon, tests
// and tools can use it without the engine.
//
// Inbound, it checks Meta's webhook handshake (VerifyHandshake) and the
// X-Hub-Signature-256 header of each POST (VerifySignature), then turns a
// webhook body into a Batch (Parse): customer messages and
// user_preferences changes become schemas.Event values; delivery statuses
// become Status records.
//
// Outbound, a Client sends text and template messages to
// {BaseURL}/{phone-number-id}/messages and reports failures as *Error,
// classified from Meta's error codes into retryable or permanent, with
// WindowClosed (error 131047) and OptedOut (error 131050) singled out
// because the engine acts on them.
//
// # Conversation ids
//
// A WhatsApp conversation is the pair of a business phone number and a
// customer. Its triage id is
//
//	wa:<phone_number_id>:<wa_id>
//
// where phone_number_id is the Cloud API id of the business number the
// customer wrote to (the webhook's metadata.phone_number_id) and wa_id is
// the customer's WhatsApp id. ConversationID builds it and
// SplitConversationID takes it apart, which tells the sender which
// business number to answer from and which customer to send to.
//
// # Duplicates
//
// Meta retries any non-200 answer for up to seven days and may deliver a
// webhook more than once. Every event Parse returns has a deterministic
// id (the message id for messages), so the engine's duplicate detection
// ignores redeliveries; a Status is deduplicated on Status.Key, its id
// plus its status. Parse also drops repeats within one body.
//
// The package never reaches the network on its own: only a Client does,
// at the BaseURL it is given. The whatsapptest package holds a fake Cloud
// API server and helpers to build signed webhook requests.
package whatsapp
