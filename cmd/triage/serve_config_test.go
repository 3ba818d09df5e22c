package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadServeConfig(t *testing.T) {
	t.Setenv("TRIAGE_T_SECRET", "a\"b # c\nd: e")
	t.Setenv("TRIAGE_T_TOKEN", "tok")
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `listen: 127.0.0.1:9
whatsapp:
  phone_number_id: "106540352242922"
  access_token: ${TRIAGE_T_TOKEN}
  app_secret: ${TRIAGE_T_SECRET}
  verify_token: v
access:
  - {name: ops, token: "${TRIAGE_T_TOKEN}", role: admin}
`)
	cfg, unset, err := loadServeConfig(good)
	if err != nil || unset != nil {
		t.Fatal(err, unset)
	}
	// The secret stays one value: its quote, # and newline break nothing.
	if cfg.WhatsApp.AppSecret != "a\"b # c\nd: e" || cfg.WhatsApp.AccessToken != "tok" || cfg.Access[0].Token != "tok" || cfg.Listen != "127.0.0.1:9" {
		t.Errorf("config %+v %+v", cfg, cfg.WhatsApp)
	}
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown key", "listen: x\nlisen: y\n", "field lisen not found"},
		{"incomplete whatsapp", "whatsapp: {phone_number_id: \"1\", access_token: x}\n", "whatsapp needs app_secret, verify_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadServeConfig(write(tt.name+".yaml", tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
	if cfg, _, err := loadServeConfig(write("empty.yaml", "")); err != nil || cfg.Listen != "" {
		t.Errorf("empty file: %v", err)
	}
	// The spec's example: an unset TRIAGE_DATABASE_URL means in memory.
	cfg, unset, err = loadServeConfig(write("db.yaml", "database: ${TRIAGE_T_NOT_SET}  # empty: state in memory\n"))
	if err != nil || cfg.Database != "" || len(unset) != 1 || unset[0] != "TRIAGE_T_NOT_SET" {
		t.Errorf("unset variable: %+v %v %v", cfg, unset, err)
	}
}
