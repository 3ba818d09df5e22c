package whatsapp_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/triage-dev/triage/connectors/whatsapp"
	"github.com/triage-dev/triage/connectors/whatsapp/whatsapptest"
)

func ExampleParse() {
	body := whatsapptest.Fixture("meta_docs_inbound_interactive_button_reply.json")
	header := whatsapptest.Sign(body, "test_app_secret") // what Meta sends

	if !whatsapp.VerifySignature(body, header, "test_app_secret") {
		fmt.Println("bad signature: answer 401")
		return
	}
	batch, err := whatsapp.Parse(body, "106540352242922")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range batch.Events {
		fmt.Println(ev.Type, ev.At.Format("2006-01-02T15:04:05Z07:00"))
		fmt.Println(ev.Conversation)
		fmt.Printf("%s %s %q payload=%q\n", ev.Contact.Phone, ev.Kind, ev.Text, ev.Payload)
	}
	// Output:
	// message.received 2025-06-15T22:05:36Z
	// wa:106540352242922:16505551234
	// +16505551234 interactive "Cancel" payload="cancel-button"
}

func ExampleClient_SendText() {
	srv := whatsapptest.NewServer() // a fake Cloud API on loopback
	defer srv.Close()
	srv.FailNext(1, whatsapptest.MetaError(131047))

	c := &whatsapp.Client{BaseURL: srv.BaseURL(), PhoneNumberID: "106540352242922", Token: "token"}
	_, err := c.SendText(context.Background(), "16505551234", "Are you still there?", "m7/follow-up/reply#0")
	var e *whatsapp.Error
	if errors.As(err, &e) {
		fmt.Println("window closed:", e.WindowClosed, "retryable:", e.Retryable())
	}
	id, err := c.SendTemplate(context.Background(), "16505551234", "follow_up", "en_US", []string{"Sheena"}, "m7/follow-up/send_template#1")
	fmt.Println(id != "", err)
	// Output:
	// window closed: true retryable: false
	// true <nil>
}
