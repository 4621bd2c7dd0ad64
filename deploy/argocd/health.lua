-- Argo CD health check for onnxops.dev TrainingJob, ModelVersion and InferenceService.
-- It reads the kstatus conditions every onnxops kind sets (Ready, Reconciling, Stalled; plus Degraded
-- for a rollback and DriftDetected for drift) and status.observedGeneration.
local hs = {}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or c.type
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the onnxops operator"
  return hs
end
-- A new spec (generation) the operator has not acted on yet: whatever status says is about the old one.
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end

local stalled = condition("Stalled")
local reconciling = condition("Reconciling")
local ready = condition("Ready")
local degraded = condition("Degraded")
local drift = condition("DriftDetected")

-- Stalled: failed training, failed verification, or an automatic rollback that holds until the spec
-- changes (the previous version is serving; Git still names the rolled-back one).
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded ~= nil and degraded.status == "True" and degraded or stalled)
  return hs
end
if obj.kind == "TrainingJob" and obj.status.phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "TrainingJob is suspended (spec.suspend)"
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if drift ~= nil and drift.status == "True" then
    hs.message = hs.message .. " (drift detected: " .. describe(drift) .. ")"
  end
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
