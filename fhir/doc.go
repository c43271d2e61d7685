// Package fhir maps the FHIR R4 resources patient apps, EHR portals and
// device hubs send onto eprostream's submissions, through definitions the
// system holds, never through what a resource claims:
//
//   - a QuestionnaireResponse is mapped through the Questionnaire it names
//     (its canonical, with or without |version): linkId → the Questionnaire's
//     item → its code (LOINC) → the instrument item; coded answers are scored
//     from the Questionnaire's answerOption (ordinalValue, itemWeight), then
//     from the LOINC answer list PHQ-9 and GAD-7 share. A response that names
//     no Questionnaire is matched by its linkIds against the forms of the
//     instruments its study uses;
//   - an Observation of the vital-signs profile is mapped by its LOINC code
//     (a blood-pressure panel by its components) onto the VITALS items;
//   - a Bundle (batch, transaction, collection) is a list of those.
//
// Every refusal is an OperationOutcome whose issues name FHIRPath-style
// expressions (QuestionnaireResponse.item[8].answer[0]). The study, site and
// subject come from the subject's enrolment (the gateway's roster); the
// mapped submission is an ordinary native envelope, checked by the same
// catalogue as every other.
package fhir
