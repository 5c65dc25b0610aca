# Writes the Nth ```c block of a Markdown file to a C file, so a test can
# compile the documented example itself and the two cannot drift apart.
#
#   cmake -DIN=docs/page.md -DOUT=example.c [-DBLOCK=1] -P extract-doc-example.cmake
#
# BLOCK counts from 1 (default: the first block). The output starts with a
# #line directive, so compiler messages point into the Markdown file.
if(NOT DEFINED IN OR NOT DEFINED OUT)
  message(FATAL_ERROR "extract-doc-example: set IN and OUT")
endif()
if(NOT DEFINED BLOCK)
  set(BLOCK 1)
endif()
file(READ "${IN}" rest)
string(PREPEND rest "\n") # so a block on the first line is found too
set(line 0)               # the line at which what is left in rest begins
foreach(i RANGE 1 ${BLOCK})
  string(FIND "${rest}" "\n```c\n" open)
  if(open EQUAL -1)
    message(FATAL_ERROR "extract-doc-example: ${IN} has no ```c block number ${BLOCK}")
  endif()
  math(EXPR start "${open} + 6")
  string(SUBSTRING "${rest}" 0 ${start} skipped)
  string(REGEX MATCHALL "\n" newlines "${skipped}")
  list(LENGTH newlines n)
  math(EXPR line "${line} + ${n}")
  string(SUBSTRING "${rest}" ${start} -1 rest)
endforeach()
string(FIND "${rest}" "\n```\n" close)
if(close EQUAL -1)
  message(FATAL_ERROR "extract-doc-example: block ${BLOCK} of ${IN} does not end")
endif()
string(SUBSTRING "${rest}" 0 ${close} code)
file(WRITE "${OUT}" "#line ${line} \"${IN}\"\n${code}\n")
