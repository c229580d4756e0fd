-- One of two apps with the same schema names and a module of the same name
-- (models.lua next to this file), loaded in one run by
-- spec/integration/schema_scopes_spec.lua.
return require("spec.integration.apps.catalog_common")("A", require "models")
