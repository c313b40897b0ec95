# Warnings for project code only (third-party code is built with its own flags).
add_library(moejit_warnings INTERFACE)
target_compile_options(moejit_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                                 -Wno-missing-field-initializers)
if(MOEJIT_WERROR)
  target_compile_options(moejit_warnings INTERFACE -Werror)
endif()
