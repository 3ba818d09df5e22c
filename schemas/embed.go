package schemas

import _ "embed" // for go:embed

// RulesSchema is the JSON Schema (draft 2020-12) of triage rule files, with
// $id https://triage.dev/schemas/rules.schema.json. Editors read the same
// file through the modeline
// "# yaml-language-server: $schema=../../schemas/rules.schema.json".
//
//go:embed rules.schema.json
var RulesSchema []byte
