local j = require "jararaca"
return j.Microservice {
  controllers = { 
