package whatsapp_test

import (
	"encoding/json"
	"testing"

	"github.com/triage-dev/triage/connectors/whatsapp"
)

// FuzzParse feeds Parse arbitrary bodies, seeded with every payload in
// testdata. Parse must not panic; it returns either an error and no batch,
// or a batch whose events and statuses are complete (checkBatch) and which
// marshals to JSON.
func FuzzParse(f *testing.F) {
	for _, body := range payloads(f) {
		f.Add(body, "106540352242922")
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"wamid.X","timestamp":"1700000000","type":"text"}],"contacts":[{"wa_id":"1"}]}}]}]}`), "")
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"user_preferences","value":{"user_preferences":[{"wa_id":"1","category":"marketing_messages","value":"stop","timestamp":1e3}]}}]}]}`), "")
	f.Add([]byte(`{}`), "")
	f.Fuzz(func(t *testing.T, body []byte, businessNumber string) {
		b, err := whatsapp.Parse(body, businessNumber)
		if err != nil {
			if b != nil {
				t.Fatalf("Parse returned a batch with error %v", err)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if b == nil {
			t.Fatal("Parse returned neither a batch nor an error")
		}
		checkBatch(t, b)
		if _, err := json.Marshal(b); err != nil {
			t.Fatalf("batch does not marshal: %v", err)
		}
	})
}
