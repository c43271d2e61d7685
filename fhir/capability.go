package fhir

// Capability is the CapabilityStatement GET /fhir/metadata answers: the
// resources eprostream takes (create only) and the Bundle types of
// POST /fhir.
func Capability(version string) map[string]any {
	create := []map[string]string{{"code": "create"}}
	return map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-12-02",
		"kind":         "instance",
		"software":     map[string]string{"name": "eprostream", "version": version},
		"implementation": map[string]string{
			"description": "eprostream ingest: patient-reported outcomes and home vital signs for clinical trials",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"application/fhir+json", "json"},
		"rest": []map[string]any{{
			"mode": "server",
			"documentation": "Resources are placed by their subject's enrolment; a QuestionnaireResponse is mapped through its " +
				"Questionnaire, an Observation through its LOINC code. Every refusal is an OperationOutcome.",
			"security": map[string]any{"description": "Authorization: Bearer <API key> with the submit role"},
			"resource": []map[string]any{
				{"type": "QuestionnaireResponse", "interaction": create,
					"documentation": "status completed or amended; linkIds mapped through the named Questionnaire (built in: " +
						LOINCBase + "44249-1 PHQ-9, " + LOINCBase + "69737-5 GAD-7, " + LOINCBase + "72514-3 pain NRS)"},
				{"type": "Observation", "interaction": create, "supportedProfile": []string{"http://hl7.org/fhir/StructureDefinition/vitalsigns"},
					"documentation": "status final, amended or corrected; body temperature 8310-5, body weight 29463-7, heart rate 8867-4, " +
						"blood pressure 85354-9 (components 8480-6, 8462-4), SpO2 59408-5 / 2708-6"},
			},
			"interaction": []map[string]string{{"code": "batch"}, {"code": "transaction"}},
		}},
	}
}
