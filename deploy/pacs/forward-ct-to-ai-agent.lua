-- Orthanc as the hospital PACS: forward every CT instance that arrives over DICOM to the AI
-- agent. Only CT: the agent's results (SEG, SR, key images: modalities SEG, SR, OT) come back
-- to this PACS and must not be forwarded again.
function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin["RequestOrigin"] == "DicomProtocol" and tags["Modality"] == "CT" then
    SendToModality(instanceId, "ai-agent")
  end
end
