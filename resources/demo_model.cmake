# The embedded demo model travels inside each program as a Qt resource (:/demo-model), so the CLI
# and the window work on a fresh machine with no model downloaded.
function(pkv_add_demo_model target)
  set(dir ${PROJECT_SOURCE_DIR}/resources/demo-model)
  qt_add_resources(${target} demo_model_${target}
    PREFIX /demo-model
    BASE ${dir}
    FILES ${dir}/config.json ${dir}/preprocessor_config.json ${dir}/tokenizer.model ${dir}/added_tokens.json
          ${dir}/tokenizer_config.json ${dir}/model.safetensors)
endfunction()
