package rules_test

import (
	"testing"

	"github.com/triage-dev/triage/rules"
)

func TestAgentSpeaks(t *testing.T) {
	a := &rules.Agent{Languages: []string{"en", "pt-BR", "hi"}}
	for _, tt := range []struct {
		lang string
		want bool
	}{
		{"", true}, {"en", true}, {"EN", true}, {"en-GB", true}, {"en_GB", true},
		{"pt-BR", true}, {"pt_br", true}, {"pt", true}, {"pt-PT", false},
		{"hi-IN", true}, {"es", false}, {"e", false},
	} {
		if got := a.Speaks(tt.lang); got != tt.want {
			t.Errorf("Speaks(%q) = %v, want %v", tt.lang, got, tt.want)
		}
	}
}
