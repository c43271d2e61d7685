package fhir

// Capability is the CapabilityStatement GET /fhir/metadata answers: the
// resources eprostream takes (create only) and the Bundle types of
// POST /fhir.
func Capability(version string) any {
	create := []map[string]string{{"code": "create"}}
	return struct {
		ResourceType   string            `json:"resourceType"`
		Status         string            `json:"status"`
		Date           string            `json:"date"`
		Kind           string            `json:"kind"`
		Software       map[string]string `json:"software"`
		Implementation map[string]string `json:"implementation"`
		FHIRVersion    string            `json:"fhirVersion"`
		Format         []string          `json:"format"`
		Rest           []map[string]any  `json:"rest"`
	}{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         "2026-12-02",
		Kind:         "instance",
		Software:     map[string]string{"name": "eprostream", "version": version},
		Implementation: map[string]string{
			"description": "eprostream ingest: patient-reported outcomes and home vital signs for clinical trials",
		},
		FHIRVersion: "4.0.1",
		Format:      []string{"application/fhir+json", "json"},
		Rest: []map[string]any{{
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
